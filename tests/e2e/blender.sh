#!/bin/bash
# End-to-end with the real Blender: a tiny Cycles scene rendered warm under mpirun and one-shot.
. "$(dirname "$0")/lib.sh"
command -v blender >/dev/null || skip_all "blender is not installed (scripts/install-deps.sh installs it)"
[ -n "${DR_E2E_FAST_ONLY:-}" ] && skip_all "DR_E2E_FAST_ONLY is set (sanitizer run): real Blender skipped"
cd "$WORK" || exit 1

blender -b --factory-startup --python-exit-code 1 --python "$TOP/tests/fixtures/make_tiny.py" \
	-- "$WORK/tiny.blend" >make.log 2>&1
ok $? "tiny scene built" || sed 's/^/#   /' make.log

"${MPIRUN[@]}" -np 3 "$DRENDER" tiny.blend 1 4 -o out/tiny_## --report r1.json >out1.txt 2>err1.txt
rc=$?
is $rc 0 "mpirun -np 3 with real Blender: exit 0"
[ $rc -eq 0 ] || sed 's/^/#   /' err1.txt
is "$(valid_pngs out)" 4 "4 complete PNG frames"
is "$(ls out | tr '\n' ' ')" "tiny_01.png tiny_02.png tiny_03.png tiny_04.png " "names follow the pattern"
is "$(json r1.json 'd["counts"]["rendered"]')" 4 "report: 4 rendered"
is "$(json r1.json 'len([r for r in d["ranks"] if r["frames"] > 0]) >= 1')" True "report: render nodes listed"
python3 - out/tiny_01.png out/tiny_04.png <<'PY'
import struct, sys
for p in sys.argv[1:]:
    b = open(p, "rb").read()
    w, h = struct.unpack(">II", b[16:24])
    assert (w, h) == (64, 36), (p, w, h)
PY
ok $? "frames are 64x36 as the scene says"
cmp -s out/tiny_01.png out/tiny_04.png
ok $((!$?)) "frames differ (the scene is animated)"
is "$(tmpfiles out)" 0 "no temporary files left"

# --samples, --engine and one-shot mode go through Blender's own command line.
"$DRENDER" tiny.blend 5 6 --one-shot -E workbench -o one/t_# >out2.txt 2>err2.txt
rc=$?
is $rc 0 "--one-shot with Workbench: exit 0"
[ $rc -eq 0 ] || sed 's/^/#   /' err2.txt
is "$(valid_pngs one)" 2 "--one-shot: 2 complete PNGs"

# A file that is not a .blend but has the magic: Blender itself refuses it -> exit 2, one line.
printf 'BLENDER-v304 this is not really a blend' >broken.blend
"${MPIRUN[@]}" -np 2 "$DRENDER" broken.blend 1 2 -o broken/b_# >out3.txt 2>err3.txt
is $? 2 "a scene Blender cannot read: exit 2"
grep -q '^drender: error: No render node could start Blender on the scene' err3.txt
ok $? "a scene Blender cannot read: says so once"

is "$(leftovers)" 0 "no Blender left"
show_leftovers
done_testing
