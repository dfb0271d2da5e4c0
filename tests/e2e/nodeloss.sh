#!/bin/bash
# End-to-end: losing render nodes under mpirun --enable-recovery, with the fake Blender, on this
# machine. A render rank killed mid-job, a rank stopped (SIGSTOP) past --node-timeout and then
# continued, every render node lost, a service losing a node with jobs queued, and --min-nodes.
# The survivors finish the work: every frame valid, none saved twice (the fake's "saved" log lines),
# no process left behind.
. "$(dirname "$0")/lib.sh"
cd "$WORK" || exit 1
fake_scene s.blend
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_LOG=$WORK/fb.log
RMPI=("${MPIRUN[@]}" --enable-recovery)

frames_in() { find "$1" -maxdepth 1 -name 'f_*.png' 2>/dev/null | wc -l; }
at_least() { [ "$(frames_in "$1")" -ge "$2" ]; }
saved_twice() { awk '$1 == "saved" {print $3}' fb.log | sort | uniq -d | wc -l; }
none_left() { [ "$(leftovers)" -eq 0 ]; }

# 1. A render rank SIGKILLed mid-job: the others finish, exit 0.
: >fb.log
FAKE_BLENDER_COST=0.3 "${RMPI[@]}" -np 4 "$DRENDER" s.blend 1 40 -o out1/f_### --node-timeout 3 \
	--report r1.json >o1.txt 2>e1.txt &
pid=$!
wait_for 60 at_least out1 5
victim=$(rank_pid 3)
t0=$(date +%s.%N)
kill -9 "$victim" 2>/dev/null
ok $? "killed render rank 3 ($victim) mid-job"
wait_for 60 grep -q "rank 3 .* is lost" e1.txt
t1=$(date +%s.%N)
echo "# rank 3 declared lost and its frames requeued $(echo "$t1 - $t0" | bc) s after the kill"
wait "$pid"
is "$(json r1.json 'd["exit_code"]')" 0 "killed rank: the job ends with exit 0"
is "$(valid_pngs out1)" 40 "killed rank: all 40 frames valid"
is "$(saved_twice)" 0 "killed rank: no frame saved twice"
is "$(json r1.json '[r["lost"] for r in d["ranks"]]')" "[False, False, True]" \
	"killed rank: the report lists rank 3 as lost"
is "$(json r1.json 'd["counts"]["rendered"]')" 40 "killed rank: each frame counted once"
wait_for 30 none_left
is "$(leftovers)" 0 "killed rank: nothing left running"
show_leftovers

# 2. A rank stopped past --node-timeout, then continued: lost, its late result accepted once or
# discarded, told to stop; the job ends with exit 0.
: >fb.log
FAKE_BLENDER_COST=0.3 "${RMPI[@]}" -np 4 "$DRENDER" s.blend 1 40 -o out2/f_### --node-timeout 3 \
	--report r2.json >o2.txt 2>e2.txt &
pid=$!
wait_for 60 at_least out2 5
victim=$(rank_pid 2)
kill -STOP "$victim"
wait_for 60 grep -q "rank 2 .* is lost" e2.txt
ok $? "stopped rank 2 is declared lost"
kill -CONT "$victim"
wait "$pid"
is "$(json r2.json 'd["exit_code"]')" 0 "stopped rank: exit 0"
is "$(valid_pngs out2)" 40 "stopped rank: all 40 frames valid"
is "$(json r2.json 'd["counts"]["rendered"]')" 40 "stopped rank: each frame counted once"
grep -q "rank 2 .*spoke again" e2.txt
ok $? "the continued rank is told to stop"
wait_for 30 none_left
is "$(leftovers)" 0 "stopped rank: nothing left running"
show_leftovers

# 3. Every render node lost: exit 3 naming them; a re-run completes.
FAKE_BLENDER_COST=0.3 "${RMPI[@]}" -np 2 "$DRENDER" s.blend 1 20 -o out3/f_### --node-timeout 3 \
	--report r3.json >o3.txt 2>e3.txt &
pid=$!
wait_for 60 at_least out3 3
kill -9 "$(rank_pid 1)"
wait "$pid"
is "$(json r3.json 'd["exit_code"]')" 3 "all nodes lost: exit 3"
grep -q "every render node was lost (rank 1 on $(hostname))" e3.txt
ok $? "the message names the lost node and its host"
done3=$(frames_in out3)
FAKE_BLENDER_COST=0.05 "${RMPI[@]}" -np 2 "$DRENDER" s.blend 1 20 -o out3/f_### --report r3b.json \
	>o3b.txt 2>e3b.txt
ok $? "the re-run exits 0"
is "$(json r3b.json 'd["counts"]["skipped"]')" "$done3" "the re-run skips the frames done before"
is "$(valid_pngs out3)" 20 "all 20 frames valid after the re-run"
wait_for 30 none_left

# 4. A service loses a node with two jobs queued: both finish, /health and a third job answer.
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
mkdir -p blends srv
cp s.blend blends/s.blend
state_is() { http GET "/status/$1" && [ "$(field 'd["state"]')" = "$2" ]; }
SVC_MPIRUN=("${RMPI[@]}")
SVC_ARGS=(--scene "$WORK/blends/s.blend" --blend-root "$WORK/blends" --output-root "$WORK/srv"
	--node-timeout 3)
export FAKE_BLENDER_COST=0.2
SVC_LOG=$WORK/s4 svc_start 4
ok $? "service up (3 render nodes)"
http POST /render '{"from":1,"to":20}'
A=$(field 'd["jobId"]')
http POST /render '{"from":21,"to":40}'
B=$(field 'd["jobId"]')
wait_for 60 state_is "$A" running
sleep_until_frames() { [ "$(find srv -name '*.png' | wc -l)" -ge 4 ]; }
wait_for 60 sleep_until_frames
kill -9 "$(rank_pid 3)"
wait_for 60 grep -q "rank 3 .* is lost" s4.err
ok $? "service: rank 3 declared lost"
wait_for 90 state_is "$A" done
ok $? "service: job A finishes on the survivors"
wait_for 90 state_is "$B" done
ok $? "service: job B finishes on the survivors"
http GET /health
is "$CODE" 200 "service: /health still answers"
http POST /render '{"from":41,"to":46}'
C=$(field 'd["jobId"]')
wait_for 60 state_is "$C" done
ok $? "service: a third job is accepted and done"
http GET /metrics
grep -q 'drender_render_nodes{state="lost"} 1' body
ok $? "service: /metrics counts the lost node"
is "$(find srv -name '*.png' | wc -l)" 46 "service: 46 frames on disk"
kill -TERM "$SERVE_PID"
wait "$SERVE_PID"
wait_for 30 none_left

# 5. --min-nodes: below it the service drains and exits (75); restarted, it finishes the queue
# without saving any frame twice.
: >fb.log
PORT=$(free_port)
URL=http://127.0.0.1:$PORT
rm -rf srv && mkdir srv
SVC_LOG=$WORK/s5 svc_start 3 --min-nodes 2
http POST /render '{"from":1,"to":30}'
D=$(field 'd["jobId"]')
wait_for 60 sleep_until_frames
kill -9 "$(rank_pid 2)"
wait "$SERVE_PID"
grep -q "fewer than --min-nodes 2, and nothing is running: exiting with status 75" s5.err
ok $? "min-nodes: the service says it exits with status 75"
SVC_LOG=$WORK/s5b svc_start 3 --min-nodes 2
ok $? "min-nodes: the restarted service is up"
wait_for 90 state_is "$D" done
ok $? "min-nodes: the job finishes after the restart"
is "$(find srv -name '*.png' | wc -l)" 30 "min-nodes: 30 frames on disk"
is "$(saved_twice)" 0 "min-nodes: no frame saved twice across the restart"
kill -TERM "$SERVE_PID"
wait "$SERVE_PID"
wait_for 30 none_left

# 6. Stuck, not dead: a Blender that uses no CPU time for --stall seconds has its frame killed
# and retried, without a per-frame --timeout.
mkdir -p state6
FAKE_BLENDER_STATE=$WORK/state6 FAKE_BLENDER_HANG=3@1 FAKE_BLENDER_COST=0.1 \
	"${RMPI[@]}" -np 2 "$DRENDER" s.blend 1 6 -o out6/f_### --stall 2 --no-speculate \
	--report r6.json >o6.txt 2>e6.txt
is $? 0 "stall: exit 0"
is "$(json r6.json '[f["attempts"] for f in d["frames"] if f["frame"] == 3][0]')" 2 \
	"stall: the stuck frame took a second attempt"
grep -q "frame 3 .*made no progress for 2 s" e6.txt
ok $? "stall: the message says why"
is "$(valid_pngs out6)" 6 "stall: all 6 frames valid"
wait_for 30 none_left
is "$(leftovers)" 0 "nothing left running"
show_leftovers
done_testing
