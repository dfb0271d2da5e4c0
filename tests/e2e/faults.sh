#!/bin/bash
# End-to-end fault injection with the fake Blender: crashes, hangs, junk, Python errors, exclusion,
# interrupts, a killed node and a silent node. Nothing lost, nothing done twice, nothing left over.
. "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1
fake_scene "$WORK/s.blend"
LOG=$WORK/blender.log
mkdir state
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_LOG=$LOG FAKE_BLENDER_STATE=$WORK/state FAKE_BLENDER_COST=0.05

# renders_of FRAME: how many times Blender was asked to render FRAME.
renders_of() { grep -c "^render [0-9]* $1\$" "$LOG"; }
fresh() { rm -rf out state/* r.json; : >"$LOG"; }
# frame_field REPORT FRAME FIELD
frame_field() { json "$1" "[f for f in d['frames'] if f['frame'] == $2][0]['$3']"; }

no_leftovers() { [ "$(leftovers)" -eq 0 ]; }

# common_checks NAME DIR EXPECTED_VALID: files, temporaries, processes.
common_checks() {
	is "$(valid_pngs "$2")" "$3" "$1: $3 valid frames on disk"
	is "$(tmpfiles "$2")" 0 "$1: no temporary files"
	is "$(leftovers)" 0 "$1: no Blender left"
	show_leftovers
}

# 1. Blender killed mid-frame (warm): restarted, frame retried, job complete.
fresh
FAKE_BLENDER_CRASH=3@1 "${MPIRUN[@]}" -np 3 "$DRENDER" s.blend 1 6 -o out/f_## --report r.json >o.txt 2>e.txt
is $? 0 "warm crash: exit 0"
is "$(frame_field r.json 3 attempts)" 2 "warm crash: frame 3 took 2 attempts"
is "$(grep -c '^start' "$LOG")" 3 "warm crash: one Blender restarted (3 starts for 2 nodes)"
grep -q 'frame 3 failed on rank .*killed by signal 9' e.txt
ok $? "warm crash: the log says Blender was killed by signal 9"
is "$(json r.json 'd["counts"]["rendered"]')" 6 "warm crash: 6 rendered, none twice"
common_checks "warm crash" out 6

# 2. One-shot crash and non-zero exit.
fresh
FAKE_BLENDER_CRASH=2@1 FAKE_BLENDER_EXIT=4@1 "$DRENDER" s.blend 1 5 --one-shot -o out/f_## --report r.json >o.txt 2>e.txt
is $? 0 "one-shot crash/exit 1: exit 0"
is "$(frame_field r.json 2 attempts)$(frame_field r.json 4 attempts)" 22 "one-shot: frames 2 and 4 took 2 attempts"
common_checks "one-shot crash" out 5

# 3. Hang with --timeout: killed and retried; the retry succeeds.
fresh
t0=$(date +%s)
FAKE_BLENDER_HANG=2@1 "${MPIRUN[@]}" -np 3 "$DRENDER" s.blend 1 4 -o out/f_## --timeout 2 --no-speculate --report r.json >o.txt 2>e.txt
is $? 0 "hang + --timeout 2: exit 0"
ok $(($(date +%s) - t0 < 20 ? 0 : 1)) "hang + --timeout 2: done within 20 s"
is "$(frame_field r.json 2 attempts)" 2 "hang: frame 2 took 2 attempts"
grep -q 'timed out after 2 s' <<<"$(frame_field r.json 2 error)"
ok $? "hang: the attempt's error says it timed out"
common_checks "hang" out 4

# 3b. Hang without --timeout: tail control copies the straggler to an idle node; the copy wins
# and the hung Blender is killed.
fresh
t0=$(date +%s)
FAKE_BLENDER_HANG=3@1 FAKE_BLENDER_COST=0.2 "${MPIRUN[@]}" -np 3 "$DRENDER" s.blend 1 8 -o out/f_## --report r.json >o.txt 2>e.txt
is $? 0 "hang, no --timeout: exit 0 (a speculative copy finished the frame)"
ok $(($(date +%s) - t0 < 30 ? 0 : 1)) "hang, no --timeout: done within 30 s"
is "$(frame_field r.json 3 attempts)" 2 "hang: frame 3 ran twice (original and copy)"
is "$(renders_of 3)" 2 "hang: frame 3 was started twice"
common_checks "speculative copy" out 8

# 4. Junk output, no output, Python error once: each is a failed attempt, never a success.
fresh
FAKE_BLENDER_JUNK=1@1 FAKE_BLENDER_NOFILE=2@1 FAKE_BLENDER_FAIL=3@1 "${MPIRUN[@]}" -np 3 "$DRENDER" s.blend 1 4 -o out/f_## --report r.json >o.txt 2>e.txt
is $? 0 "junk/no file/Python error once: exit 0"
is "$(json r.json '[f["attempts"] for f in d["frames"]]')" "[2, 2, 2, 1]" "each bad attempt was retried"
grep -q 'not a PNG\|bad signature\|truncated' <<<"$(frame_field r.json 1 error)"
ok $? "junk: rejected by the header check"
grep -qi 'missing\|no such file\|does not exist' <<<"$(frame_field r.json 2 error)"
ok $? "no file: reported as missing"
grep -q 'Traceback\|Error' <<<"$(frame_field r.json 3 error)"
ok $? "Python error: its text is the frame's error"
common_checks "bad output" out 4

# 5. A frame that fails every attempt: listed, others complete, exit 1.
fresh
FAKE_BLENDER_FAIL=5 "${MPIRUN[@]}" -np 3 "$DRENDER" s.blend 1 8 -o out/f_## --retries 2 --report r.json >o.txt 2>e.txt
is $? 1 "always-failing frame: exit 1"
is "$(frame_field r.json 5 state)/$(frame_field r.json 5 attempts)" "failed/3" "frame 5 failed after 1 + 2 retries"
grep -q '^  frame 5 after 3 attempts: ' o.txt
ok $? "summary lists frame 5 with its error"
is "$(renders_of 5)" 3 "frame 5 tried exactly 3 times"
common_checks "always failing" out 7

# 6. A node that fails everything is taken out of rotation; with none left the job ends.
fresh
t0=$(date +%s)
FAKE_BLENDER_FAIL=1,2,3,4,5,6,7,8,9,10 "${MPIRUN[@]}" -np 2 "$DRENDER" s.blend 1 10 -o out/f_## --report r.json >o.txt 2>e.txt
is $? 1 "every frame fails: exit 1"
ok $(($(date +%s) - t0 < 20 ? 0 : 1)) "every frame fails: ends quickly instead of looping"
grep -q 'taken out of rotation' e.txt
ok $? "the log says the rank was taken out of rotation"
n=$(grep -c '^render' "$LOG")
ok $((n <= 12 ? 0 : 1)) "exclusion after 3 failed frames in a row: $n renders, not 10 x 4"
grep -q 'no render node left' o.txt
ok $? "remaining frames fail with 'no render node left'"
common_checks "exclusion" out 0

# 7. Interrupt: SIGINT to mpirun, then to a lone drender; re-run renders only what is missing.
for mode in mpirun alone; do
	fresh
	if [ $mode = mpirun ]; then
		FAKE_BLENDER_COST=0.5 "${MPIRUN[@]}" -np 3 "$DRENDER" s.blend 1 30 -o out/f_## --report r.json >o.txt 2>e.txt &
	else
		FAKE_BLENDER_COST=0.5 "$DRENDER" s.blend 1 30 -o out/f_## --report r.json >o.txt 2>e.txt &
	fi
	pid=$!
	wait_for 60 has_files 2 out 'f_*' # mid-job: some frames done, others in flight
	kill -INT $pid
	t0=$(date +%s%N)
	wait $pid
	rc=$?
	while [ "$(leftovers)" -gt 0 ] && [ $(($(date +%s%N) - t0)) -lt 5000000000 ]; do sleep 0.1; done
	ms=$((($(date +%s%N) - t0) / 1000000))
	if [ $mode = alone ]; then is $rc 130 "interrupt ($mode): exit 130"; else
		ok $((rc != 0 ? 0 : 1)) "interrupt ($mode): non-zero exit ($rc; Open MPI's mpirun returns 1 for a job it aborts)"
	fi
	is "$(json r.json 'd["status"] + " " + str(d["exit_code"])')" "interrupted 130" "interrupt ($mode): report says interrupted, 130"
	ok $((ms < 5000 ? 0 : 1)) "interrupt ($mode): no Blender left after $ms ms"
	done_before=$(valid_pngs out)
	ok $((done_before > 0 && done_before < 30 ? 0 : 1)) "interrupt ($mode): $done_before frames done before"
	is "$(tmpfiles out)" 0 "interrupt ($mode): no temporary files"
	: >"$LOG"
	"${MPIRUN[@]}" -np 3 "$DRENDER" s.blend 1 30 -o out/f_## --report r2.json >/dev/null 2>&1
	is $? 0 "interrupt ($mode): re-run completes"
	is "$(json r2.json 'd["counts"]["skipped"]')/$(json r2.json 'd["counts"]["rendered"]')" "$done_before/$((30 - done_before))" "interrupt ($mode): re-run renders only the missing frames"
	is "$(grep -c '^render' "$LOG")" $((30 - done_before)) "interrupt ($mode): no frame rendered twice"
done

# 8. A render node killed: Open MPI ends the job; Blender dies with its rank; re-run resumes.
fresh
FAKE_BLENDER_COST=0.5 "${MPIRUN[@]}" -np 3 "$DRENDER" s.blend 1 30 -o out/f_## >o.txt 2>e.txt &
pid=$!
wait_for 30 has_files 2 out 'f_*' # mid-job: once frames have landed
victim=$(rank_pid 2)
ok $([ -n "$victim" ] && echo 0 || echo 1) "found rank 2's process"
kill -9 "$victim"
t0=$(date +%s)
wait $pid
rc=$?
ok $((rc != 0 ? 0 : 1)) "killed node: job ends with an error (exit $rc)"
ok $(($(date +%s) - t0 < 30 ? 0 : 1)) "killed node: ended within 30 s"
wait_for 10 no_leftovers
is "$(leftovers)" 0 "killed node: no Blender or drender left"
show_leftovers
done_before=$(valid_pngs out)
: >"$LOG"
"${MPIRUN[@]}" -np 3 "$DRENDER" s.blend 1 30 -o out/f_## --report r2.json >o2.txt 2>e2.txt
is $? 0 "killed node: re-run completes"
is "$(json r2.json 'd["counts"]["rendered"]')" $((30 - done_before)) "killed node: re-run renders only the $((30 - done_before)) missing frames"
is "$(tmpfiles out)" 0 "killed node: temporary files cleaned up by the re-run"

# 9. A silent node (SIGSTOP): rank 0 notices within --node-timeout and names the host.
fresh
FAKE_BLENDER_COST=0.5 "${MPIRUN[@]}" -np 3 "$DRENDER" s.blend 1 40 -o out/f_## --node-timeout 5 --report r.json >o.txt 2>e.txt &
pid=$!
wait_for 30 has_files 2 out 'f_*' # mid-job: once frames have landed
victim=$(rank_pid 1)
kill -STOP "$victim"
t0=$(date +%s)
wait $pid
rc=$?
took=$(($(date +%s) - t0))
ok $((rc != 0 ? 0 : 1)) "silent node: job ends with an error (exit $rc)"
ok $((took <= 15 ? 0 : 1)) "silent node: noticed within 15 s with --node-timeout 5 (took $took s)"
grep -q "rank 1 on host $(hostname) has not been heard from" e.txt
ok $? "silent node: the error names the rank and host"
is "$(json r.json 'd["exit_code"]')" 3 "silent node: report says exit 3"
wait_for 10 no_leftovers
is "$(leftovers)" 0 "silent node: nothing left running"
show_leftovers
done_before=$(valid_pngs out)
"${MPIRUN[@]}" -np 3 "$DRENDER" s.blend 1 40 -o out/f_## --report r2.json >/dev/null 2>&1
is $? 0 "silent node: re-run completes"
is "$(json r2.json 'd["counts"]["rendered"]')" $((40 - done_before)) "silent node: re-run renders only the missing frames"

done_testing
