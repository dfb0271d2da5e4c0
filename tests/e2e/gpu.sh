#!/bin/bash
# End-to-end: GPUs chosen on purpose, one per render node, never a quiet fall-back to CPU. The fake
# Blender "sees" the GPUs FAKE_BLENDER_DEVICES names; the real Blender (if installed) sees none.
. "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1
fake_scene "$WORK/shot.blend"
LOG=$WORK/blender.log
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_LOG=$LOG FAKE_BLENDER_COST=0.05
export FAKE_BLENDER_DEVICES="CUDA:0:NVIDIA A100,CUDA:1:NVIDIA A100"
unset CUDA_VISIBLE_DEVICES HIP_VISIBLE_DEVICES ROCR_VISIBLE_DEVICES

# 1. Two render nodes, two GPUs: each takes its own, by local rank; the report says who used what.
"${MPIRUN[@]}" -np 3 "$DRENDER" shot.blend 1 8 --device cuda --report r1.json >out1.txt 2>err1.txt
rc=$?
is $rc 0 "--device cuda, 2 nodes, 2 GPUs: exit 0"
[ $rc -eq 0 ] || sed 's/^/#   /' err1.txt
is "$(json r1.json 'sorted(r["device"] for r in d["ranks"])')" \
	"['CUDA:0 NVIDIA A100', 'CUDA:1 NVIDIA A100']" "report: each node on its own GPU"
is "$(json r1.json 'all(f["device"] in ("CUDA:0 NVIDIA A100", "CUDA:1 NVIDIA A100") for f in d["frames"])')" \
	True "report: every frame names the GPU that rendered it"
# the report's per-frame device is the one the fake Blender logged for that frame
is "$(json r1.json 'sorted((f["frame"], f["device"]) for f in d["frames"])')" \
	"$(python3 -c '
import sys
seen = {}
for line in open(sys.argv[1]):
    p = line.split(" ", 3)
    if p[0] == "device":
        seen[int(p[2])] = p[3].strip()
print(sorted(seen.items()))' "$LOG")" "report: per-frame device matches what Blender used"
is "$(json r1.json 'all(r["peak_memory_mb"] == 12.0 for r in d["ranks"])')" True "report: each node's peak memory"
grep -q 'CUDA:1 NVIDIA A100' out1.txt
ok $? "summary: the device per node"
is "$(grep '^settings' "$LOG" | grep -c '"gpu_threads": [12],')" 2 "a GPU node keeps few CPU threads"
is "$(grep '^settings' "$LOG" | grep -c '"persistent_data": true')" 2 "persistent data on by default"

# 2. A GPU type Blender does not see: bad input, exit 2, nothing rendered, what it saw named.
: >"$LOG"
"${MPIRUN[@]}" -np 3 "$DRENDER" shot.blend 1 4 --device optix -o o2/f_# >out2.txt 2>err2.txt
is $? 2 "--device optix where Blender sees only CUDA: exit 2"
grep -q 'Blender sees no OPTIX device (what it sees: OPTIX: none; CUDA: NVIDIA A100, NVIDIA A100' err2.txt
ok $? "the error names what Blender saw"
[ $? -eq 0 ] || sed 's/^/#   /' err2.txt
is "$(grep -c '^render' "$LOG")" 0 "nothing rendered"
FAKE_BLENDER_DEVICES= "$DRENDER" shot.blend 1 2 --device cuda -o o2b/f_# >out2b.txt 2>err2b.txt
is $? 2 "no GPU at all, one rank: exit 2"
grep -q 'Blender sees no CUDA device' err2b.txt
ok $? "no GPU at all: says so"

# 3. CUDA_VISIBLE_DEVICES says how many GPUs a host has: more render nodes than that is refused up
# front, with the numbers, unless --gpus-per-node says to share.
CUDA_VISIBLE_DEVICES=0 "${MPIRUN[@]}" -x CUDA_VISIBLE_DEVICES -np 3 "$DRENDER" shot.blend 1 4 \
	--device cuda -o o3/f_# >out3.txt 2>err3.txt
is $? 2 "2 render nodes, CUDA_VISIBLE_DEVICES=0: exit 2"
grep -q '2 render nodes on host .* but 1 GPU (CUDA_VISIBLE_DEVICES=0): use --gpus-per-node 1 to share, or fewer ranks' err3.txt
ok $? "more nodes than GPUs: the numbers and what to do"
[ $? -eq 0 ] || sed 's/^/#   /' err3.txt
CUDA_VISIBLE_DEVICES=0 "${MPIRUN[@]}" -x CUDA_VISIBLE_DEVICES -np 3 "$DRENDER" shot.blend 1 4 \
	--device cuda --gpus-per-node 1 -o o3b/f_# --report r3.json >out3b.txt 2>err3b.txt
is $? 0 "--gpus-per-node 1: the two nodes share the GPU"
is "$(json r3.json 'sorted(set(r["device"] for r in d["ranks"]))')" "['CUDA:0 NVIDIA A100']" "sharing: both on GPU 0"

# 4. Without a list, a node given a GPU past what Blender sees says so with the numbers.
"${MPIRUN[@]}" -np 4 "$DRENDER" shot.blend 1 4 --device cuda -o o4/f_# >out4.txt 2>err4.txt
is $? 0 "3 nodes, 2 GPUs Blender sees: the two with a GPU render"
grep -q 'given CUDA GPU 2 but Blender sees 2 (NVIDIA A100, NVIDIA A100): use --gpus-per-node 2' err4.txt
ok $? "the node without a GPU says why, with the numbers"

# 5. auto: a GPU where Blender sees one, CPU elsewhere; cpu: CPU; --no-persistent-data.
"${MPIRUN[@]}" -np 4 "$DRENDER" shot.blend 1 6 --device auto -o o5/f_# --report r5.json >out5.txt 2>err5.txt
is $? 0 "--device auto: exit 0"
is "$(json r5.json 'sorted(r["device"] for r in d["ranks"])')" \
	"['CPU', 'CUDA:0 NVIDIA A100', 'CUDA:1 NVIDIA A100']" "auto: GPUs where there are, CPU for the third"
: >"$LOG"
"$DRENDER" shot.blend 1 2 --device cpu --no-persistent-data -o o6/f_# --report r6.json >out6.txt 2>err6.txt
is $? 0 "--device cpu --no-persistent-data: exit 0"
is "$(json r6.json 'd["frames"][0]["device"]')" CPU "cpu: frames on the CPU"
is "$(grep '^settings' "$LOG" | grep -c '"persistent_data": false')" 1 "--no-persistent-data reaches Blender"
"$DRENDER" shot.blend 1 2 --device tpu >/dev/null 2>err7.txt
is $? 2 "--device tpu: usage error"
grep -q "unknown --device 'tpu'" err7.txt
ok $? "--device tpu: named"

# 6. The real Blender (no GPU here): cuda is refused naming what it saw; cpu renders.
if command -v blender >/dev/null && [ -z "${DR_E2E_FAST_ONLY:-}" ]; then
	blender -b --factory-startup --python-exit-code 1 --python "$TOP/tests/fixtures/make_tiny.py" \
		-- "$WORK/tiny.blend" >make.log 2>&1
	ok $? "tiny scene built"
	DRENDER_BLENDER=blender "${MPIRUN[@]}" -np 2 "$DRENDER" tiny.blend 1 2 --device cuda -o b1/t_# >outb1.txt 2>errb1.txt
	is $? 2 "real Blender, --device cuda without a GPU: exit 2"
	grep -q 'Blender sees no CUDA device (what it sees: OPTIX: none; CUDA: none' errb1.txt
	ok $? "real Blender: the error names what it saw"
	[ $? -eq 0 ] || sed 's/^/#   /' errb1.txt
	is "$(ls b1 2>/dev/null | wc -l)" 0 "real Blender: nothing rendered"
	DRENDER_BLENDER=blender "${MPIRUN[@]}" -np 2 "$DRENDER" tiny.blend 1 2 --device cpu -o b2/t_# --report rb2.json >outb2.txt 2>errb2.txt
	rc=$?
	is $rc 0 "real Blender, --device cpu: exit 0"
	[ $rc -eq 0 ] || sed 's/^/#   /' errb2.txt
	is "$(valid_pngs b2)" 2 "real Blender: 2 frames"
	is "$(json rb2.json 'd["frames"][0]["device"]')" CPU "real Blender: the report says CPU"
	is "$(json rb2.json 'd["ranks"][0]["peak_memory_mb"] > 0')" True "real Blender: peak memory recorded"
else
	echo "# real Blender part skipped (not installed, or DR_E2E_FAST_ONLY)"
fi

is "$(leftovers)" 0 "no Blender left"
show_leftovers
done_testing
