#!/bin/bash
# End-to-end: batch renders with the fake Blender, alone and under mpirun: files, report, resume.
. "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1
fake_scene "$WORK/shot.blend"
LOG=$WORK/blender.log
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_LOG=$LOG FAKE_BLENDER_COST=0.05

# 1. One rank, no mpirun: renders by itself.
"$DRENDER" shot.blend 1 6 --report r1.json >out1.txt 2>err1.txt
is $? 0 "single rank: exit 0"
is "$(ls output | wc -l)" 6 "single rank: 6 files in output/"
is "$(valid_pngs output)" 6 "single rank: all 6 are complete PNGs"
check "default naming output/<scene>_####.png" -- test -f output/shot_0001.png -a -f output/shot_0006.png
is "$(json r1.json 'd["counts"]["rendered"]')" 6 "report: 6 rendered"
is "$(json r1.json 'd["ranks"][0]["threads"]')" "$(nproc)" "single rank: Blender gets every CPU"
is "$(json r1.json 'sorted(set(f["attempts"] for f in d["frames"]))')" "[1]" "report: one attempt each"
is "$(json r1.json 'all(f["output"].endswith("shot_%04d.png" % f["frame"]) for f in d["frames"])')" True "report: output path per frame"
is "$(grep -c '^start' "$LOG")" 1 "warm: one Blender start for 6 frames"
grep -q 'Failed frames' out1.txt
ok $((!$?)) "summary lists no failed frames"
grep -q 'frame 6 done by rank 0' err1.txt
ok $? "without a terminal: one line per finished frame"

# 2. Re-run: everything is skipped, nothing rendered.
: >"$LOG"
"$DRENDER" shot.blend 1 6 --report r2.json >/dev/null 2>&1
is $? 0 "re-run: exit 0"
is "$(json r2.json 'd["counts"]["skipped"]')" 6 "re-run: 6 skipped"
is "$(grep -c '^render' "$LOG")" 0 "re-run: no frame rendered again"

# 3. Under mpirun with 3 ranks: 2 render nodes, each with 1 of the 2 CPUs.
: >"$LOG"
"${MPIRUN[@]}" -np 3 "$DRENDER" shot.blend --frames '1-12,5,7-9,20-24:2' -o 'frames/img_###' \
	--report r3.json >out3.txt 2>err3.txt
is $? 0 "mpirun -np 3: exit 0"
is "$(ls frames | tr '\n' ' ')" "img_001.png img_002.png img_003.png img_004.png img_005.png img_006.png img_007.png img_008.png img_009.png img_010.png img_011.png img_012.png img_020.png img_022.png img_024.png " "frame spec: each frame once, '###' padding"
is "$(grep -c '^render' "$LOG")" 15 "mpirun: 15 renders for 15 distinct frames"
is "$(grep -c '^start' "$LOG")" 2 "mpirun: one warm Blender per render node"
is "$(json r3.json 'sorted(r["rank"] for r in d["ranks"])')" "[1, 2]" "report: ranks 1 and 2 rendered"
is "$(json r3.json 'sum(r["frames"] for r in d["ranks"])')" 15 "report: per-rank frames add up"
is "$(json r3.json 'sorted(set(r["threads"] for r in d["ranks"]))')" "[1]" "np 3 on 2 CPUs: 1 thread per render node"
is "$(tmpfiles frames)" 0 "no temporary files left"

# 4. mpirun -np 2: the single render node gets both CPUs; -t overrides.
"${MPIRUN[@]}" -np 2 "$DRENDER" shot.blend 1 2 -o np2/f_# --report r4.json >/dev/null 2>&1
is "$(json r4.json 'd["ranks"][0]["threads"]')" "$(nproc)" "np 2: the render node gets all CPUs"
"${MPIRUN[@]}" -np 3 "$DRENDER" shot.blend 1 2 -o t3/f_# -t 3 --report r5.json >/dev/null 2>&1
is "$(json r5.json 'sorted(set(r["threads"] for r in d["ranks"]))')" "[3]" "-t 3 overrides the share"

# 5. --overwrite renders again; --chunk hands out several frames per task.
: >"$LOG"
"${MPIRUN[@]}" -np 3 "$DRENDER" shot.blend 1 6 --overwrite --chunk 3 --report r6.json >/dev/null 2>&1
is $? 0 "--overwrite --chunk 3: exit 0"
is "$(json r6.json 'd["counts"]["rendered"]')" 6 "--overwrite: 6 rendered again"
is "$(grep -c '^render' "$LOG")" 6 "--overwrite: 6 renders"

# 6. One-shot mode: one Blender process per frame.
: >"$LOG"
"$DRENDER" shot.blend 1 3 --one-shot -o oneshot/f_## >/dev/null 2>&1
is $? 0 "--one-shot: exit 0"
is "$(valid_pngs oneshot)" 3 "--one-shot: 3 complete PNGs"
is "$(grep '^render' "$LOG" | cut -d' ' -f2 | sort -u | wc -l)" 3 "--one-shot: a Blender process per frame"
# plus one warm Blender that lists the scene's external files before the first frame (dr_assets)
is "$(grep -c '^start' "$LOG")" 4 "--one-shot: one more Blender, listing the scene's files"

# 7. A partial file with the final name is rendered again, not trusted.
printf 'garbage' >output/shot_0003.png
: >"$LOG"
"$DRENDER" shot.blend 1 6 --report r7.json >/dev/null 2>&1
is "$(json r7.json 'd["counts"]["rendered"]')" 1 "invalid existing frame is rendered again"
is "$(valid_pngs output)" 6 "all frames valid afterwards"

is "$(leftovers)" 0 "no Blender or drender process left"
show_leftovers
done_testing
