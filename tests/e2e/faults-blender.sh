#!/bin/bash
# End-to-end faults with the real Blender and real file systems: Blender killed mid-frame, a full
# disk, and an output file system that turns read-only mid-job.
. "$(dirname "$0")/lib.sh"
command -v blender >/dev/null || skip_all "blender is not installed (scripts/install-deps.sh installs it)"
[ -n "${DR_E2E_FAST_ONLY:-}" ] && skip_all "DR_E2E_FAST_ONLY is set (sanitizer run): real Blender skipped"
cd "$WORK" || exit 1
MNT=$WORK/mnt
mkdir -p "$MNT"
cleanup_mnt() { umount "$MNT" 2>/dev/null; cleanup_work; }
trap cleanup_mnt EXIT

blender -b --factory-startup --python-exit-code 1 --python "$TOP/tests/fixtures/make_tiny.py" \
	-- "$WORK/tiny.blend" >make.log 2>&1
ok $? "tiny scene built"

# 1. Kill a real Blender mid-frame (frames made slow with --samples): the first one whose echoed
# output (-v) shows a "Sample" line has a frame in flight (see sampling_blender in lib.sh).
"${MPIRUN[@]}" -np 3 "$DRENDER" -v tiny.blend 1 4 --samples 3000 -o out/t_# --report r.json >o.txt 2>e.txt &
pid=$!
victim=$(sampling_blender e.txt 60)
ok $? "found a rendering Blender ($victim)"
kill -9 "$victim" 2>/dev/null
wait $pid
rc=$?
is $rc 0 "Blender killed mid-frame: exit 0"
[ $rc -eq 0 ] || sed 's/^/#   /' e.txt
is "$(valid_pngs out)" 4 "Blender killed mid-frame: all 4 frames valid"
is "$(json r.json 'sum(f["attempts"] for f in d["frames"])')" 5 "exactly one frame took a second attempt"
is "$(tmpfiles out)" 0 "no temporary files"
is "$(leftovers)" 0 "no Blender left"
show_leftovers

# 2. Disk full: a 64 KiB file system with room for a frame or two.
if mount -t tmpfs -o size=64k tmpfs "$MNT" 2>/dev/null; then
	head -c 52000 /dev/zero >"$MNT/filler"
	"${MPIRUN[@]}" -np 2 "$DRENDER" tiny.blend 1 6 --retries 1 -o "$MNT/t_#" --report r2.json >o2.txt 2>e2.txt
	is $? 1 "disk full: exit 1 (some frames failed)"
	grep -q "No space left on device\|disk full\|not enough space" o2.txt e2.txt
	ok $? "disk full: the error names the system error"
	grep -q "$MNT" <<<"$(json r2.json '[f.get("error", "") for f in d["frames"]]')"
	ok $? "disk full: the error names the path"
	files=$(find "$MNT" -maxdepth 1 -name 't_*' | wc -l)
	is "$(valid_pngs "$MNT" 2>/dev/null)" "$files" "disk full: every file with a final name is complete ($files)"
	is "$(json r2.json 'd["counts"]["rendered"]')" "$files" "disk full: report counts match the files"
	is "$(tmpfiles "$MNT")" 0 "disk full: no temporary files"
	umount "$MNT"

	# 3. The output file system turns read-only mid-job (fake Blender, slow frames).
	mount -t tmpfs -o size=1m tmpfs "$MNT"
	fake_scene s.blend
	DRENDER_BLENDER=$FAKE FAKE_BLENDER_COST=0.3 "${MPIRUN[@]}" -np 3 "$DRENDER" s.blend 1 20 --retries 1 -o "$MNT/f_##" --report r3.json >o3.txt 2>e3.txt &
	pid=$!
	wait_for 30 has_files 2 "$MNT" 'f_*' # mid-job: once the first frames have their final names
	mount -o remount,ro "$MNT"
	wait $pid
	is $? 1 "read-only mid-job: exit 1"
	grep -q "Read-only file system" <<<"$(json r3.json '[f.get("error", "") for f in d["frames"] if f["state"] == "failed"]')"
	ok $? "read-only mid-job: failed frames carry the system error"
	files=$(find "$MNT" -maxdepth 1 -name 'f_*' | wc -l)
	is "$(valid_pngs "$MNT")" "$files" "read-only mid-job: every file with a final name is complete ($files)"
	ok $((files > 0 ? 0 : 1)) "read-only mid-job: frames done before are kept"
	umount "$MNT"
else
	for i in 1 2 3 4 5 6 7 8 9 10; do echo "ok $((T_N + i)) # SKIP cannot mount a tmpfs here"; done
	T_N=$((T_N + 10))
fi
is "$(leftovers)" 0 "nothing left running"
show_leftovers
done_testing
