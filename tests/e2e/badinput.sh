#!/bin/bash
# End-to-end: bad usage or input gets one clear line and exit 2, fast, with nothing left running.
. "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1
fake_scene good.blend
printf 'this is not a blend file\n' >text.blend
: >empty.blend
mkdir adir
printf 'x' >afile
export DRENDER_BLENDER=$FAKE

# expect_bad DESCRIPTION PATTERN ARGS...: exit 2, a drender error line matching PATTERN, quickly,
# both alone and under mpirun; nothing rendered.
expect_bad() {
	local d=$1 pat=$2 mode rc t0 t1
	shift 2
	for mode in alone mpirun; do
		t0=$(date +%s%N)
		if [ $mode = alone ]; then
			"$DRENDER" "$@" >out.txt 2>err.txt
		else
			"${MPIRUN[@]}" -np 3 "$DRENDER" "$@" >out.txt 2>err.txt
		fi
		rc=$?
		t1=$(date +%s%N)
		is "$rc" 2 "$d ($mode): exit 2"
		grep -Eq "^drender: error: .*$pat" err.txt
		ok $? "$d ($mode): says /$pat/"
		is "$(grep -c '^drender: error:' err.txt)" 1 "$d ($mode): exactly one error line"
		ok $(((t1 - t0) / 1000000 < 30000 ? 0 : 1)) "$d ($mode): within 30 s, no hang ($(((t1 - t0) / 1000000)) ms)"
		[ $rc -eq 2 ] || sed 's/^/#   /' err.txt
	done
	is "$(find . -name '*.png' | wc -l)" 0 "$d: nothing rendered"
}

expect_bad "missing scene" "cannot open scene nope.blend: No such file" nope.blend 1 5
expect_bad "not a .blend" "text.blend is not a Blender scene" text.blend 1 5
expect_bad "empty .blend" "empty.blend is not a Blender scene" empty.blend 1 5
expect_bad "scene is a directory" "adir is not a regular file" adir 1 5
expect_bad "START > END" "START.*END|greater" good.blend 9 3
expect_bad "non-numeric frame" "'x1'" good.blend x1 3
expect_bad "negative frame" "-4" good.blend -- -4 3
expect_bad "malformed SPEC" "'1-'" good.blend --frames 1-
expect_bad "empty SPEC" "empty" good.blend --frames ''
expect_bad "unknown option" "unknown option '--bogus'" --bogus good.blend 1 2
expect_bad "missing range" "missing frame range" good.blend 1
expect_bad "bad --chunk" "--chunk" --chunk 0 good.blend 1 2
expect_bad "bad --format" "unknown --format 'MOV'" -F MOV good.blend 1 2
expect_bad "output dir cannot be created" "output path afile exists but is not a directory" -o afile/f_## good.blend 1 2
expect_bad "output dir not writable" "cannot create output directory /proc/nope" -o /proc/nope/f_## good.blend 1 2
cp good.blend victim.blend
expect_bad "--report is the scene" "is the scene" --report victim.blend victim.blend 1 2
cmp -s good.blend victim.blend
ok $? "--report victim.blend: the scene is intact"
expect_bad "--report is a frame" "is the output file of frame 1" -o out/x_# --report out/x_1.png good.blend 1 2
expect_bad "--report in a missing directory" "--report nodir/r.json: its directory does not exist" --report nodir/r.json good.blend 1 2
expect_bad "Blender not found" "not found" --blender /nonexistent/blender good.blend 1 2
export FAKE_BLENDER_LOADFAIL=1
expect_bad "Blender cannot load the scene" "No render node could start Blender on the scene: .*Cannot read file" good.blend 1 2
unset FAKE_BLENDER_LOADFAIL

is "$(leftovers)" 0 "no process left"
show_leftovers
done_testing
