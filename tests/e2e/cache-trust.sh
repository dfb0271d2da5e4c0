#!/bin/bash
# End-to-end: a node's scene cache is trusted only for what it proves. An entry overwritten with
# other bytes of the same size is not used (it is hashed before use, removed and received again);
# a cache directory that another user owns or that group/others may write is refused with the
# reason; the default cache is one per user ($TMPDIR/drender-cache-UID, mode 0700); a
# --cache-max smaller than what a run uses is said, not exceeded in silence.
. "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1
mkdir -p blends
fake_scene blends/shot.blend
printf 'padding so that the scene is not tiny\n' >>blends/shot.blend
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_LOG=$WORK/blender.log FAKE_BLENDER_COST=0.01
good=$(sha256sum blends/shot.blend | cut -d' ' -f1)

run() { # run NAME ARGS...: a 3-rank batch staging the scene, output in NAME.out/.err
	local name=$1
	shift
	timeout 120 "${MPIRUN[@]}" -np 3 "$DRENDER" --stage always -o "$WORK/$name/f_#" "$@" \
		blends/shot.blend 1 4 >"$name.out" 2>"$name.err"
}
loaded() { sed -n 's/^loaded [0-9]* //p' blender.log | sort -u | tr '\n' ' ' | sed 's/ $//'; }

# 1. A poisoned entry: same name, same size, other bytes (still a scene the fake Blender loads).
mkdir -m 700 cache
run a --cache-dir "$WORK/cache"
is $? 0 "a first run stages the scene into the cache"
entry=$(ls cache/"$good"*)
[ -f "$entry" ]
ok $? "the entry is named by the scene's SHA-256 ($(basename "$entry"))"
python3 - "$entry" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[-2] = ord("X") if b[-2] != ord("X") else ord("Y")  # same size, still BLENDER magic
open(p, "wb").write(b)
PY
bad=$(sha256sum "$entry" | cut -d' ' -f1)
[ "$bad" != "$good" ] && [ "$(stat -c %s "$entry")" = "$(stat -c %s blends/shot.blend)" ]
ok $? "the entry is overwritten with other bytes of the same size"
: >blender.log
run b --cache-dir "$WORK/cache"
is $? 0 "the next run succeeds"
is "$(loaded)" "$good" "every Blender loaded the real scene, none the poisoned copy"
grep -q "does not hold what its name says" b.err
ok $? "the poisoned entry is reported ($(grep -m1 'does not hold' b.err | head -c 200))"
is "$(sha256sum "$entry" | cut -d' ' -f1)" "$good" "and replaced by the real content"

# 2. Directories others could plant entries in.
mkdir -m 777 gw
run c --cache-dir "$WORK/gw"
grep -q "cache directory $WORK/gw is writable by group or others (mode 777)" c.err
ok $? "a cache directory writable by others is refused ($(grep -m1 'writable by' c.err | head -c 200))"
[ -z "$(ls gw)" ]
ok $? "nothing is written into it"
if [ "$(id -u)" -eq 0 ]; then
	mkdir -m 700 theirs && chown 65534:65534 theirs
	run d --cache-dir "$WORK/theirs"
	grep -q "cache directory $WORK/theirs belongs to another user (uid 65534" d.err
	ok $? "a cache directory owned by another user is refused ($(grep -m1 'belongs to' d.err | head -c 200))"
else
	ok 0 "# SKIP chown needs root"
fi

# 3. The default is per user.
mkdir -m 700 tmp
TMPDIR=$WORK/tmp run e
is $? 0 "a run with the default cache directory"
is "$(stat -c %a "tmp/drender-cache-$(id -u)" 2>/dev/null)" 700 \
	"the default is \$TMPDIR/drender-cache-$(id -u), mode 0700"
[ ! -e tmp/drender-cache ]
ok $? "no cache shared by every user"

# 4. --cache-max 1: the run still works, and says the bound is exceeded.
run f --cache-dir "$WORK/small" --cache-max 1
is $? 0 "a run with --cache-max 1 succeeds"
grep -q "exceed --cache-max 1" f.err
ok $? "and warns that the cache exceeds it ($(grep -m1 'cache-max' f.err | head -c 200))"

is "$(leftovers)" 0 "nothing left running"
done_testing
