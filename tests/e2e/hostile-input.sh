#!/bin/bash
# End-to-end: what a hostile or unlucky user tried against the service and the batch (issue 10):
# symlinks put in place after a job was accepted, hand-edited journals, invalid strings, one
# output directory for two jobs, huge jobs, a .blend that is not one.
. "$(dirname "$0")/lib.sh"
# The service (svc_setup, svc_start: lib.sh) on $PORT; `svc_start 3` has 2 render nodes.
svc_setup
mkdir -p blends/sub outside
fake_scene blends/sub/other.blend
fake_scene outside/secret.blend
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_LOG=$WORK/blender.log FAKE_BLENDER_COST=0.2

svc_start 3
ok $? "drender --serve starts"

# Item 5: a finished frame replaced by a symlink is not served.
http POST /render '{"from":1,"to":2,"output":"five"}'
F=$(field 'd["jobId"]')
wait_state "$F" done 20
ok $? "job $F done"
ln -sf /etc/passwd out/five/shot_0001.png
http GET "/jobs/$F/frames/1"
is "$CODE" 403 "a frame replaced by a symlink to /etc/passwd is refused"
grep -q root: "$WORK/body"
ok $((! $?)) "and /etc/passwd is not in the answer"
mv out/five out/five.real
ln -s ../outside out/five
cp out/five.real/shot_0002.png outside/shot_0002.png
http GET "/jobs/$F/frames/2"
is "$CODE" 403 "a frame whose directory became a symlink out of the root is refused"

# Item 5: a queued job whose output directory becomes a symlink, and one whose record in the job
# database is edited to name a scene outside --blend-root, are refused when the service adopts them
# again.
http POST /render '{"from":1,"to":2000,"output":"long"}'
L=$(field 'd["jobId"]')
wait_state "$L" running 20
http POST /render '{"from":1,"to":2,"output":"later"}'
Q1=$(field 'd["jobId"]')
http POST /render '{"from":1,"to":2,"output":"later2","blend":"sub/other.blend"}'
Q2=$(field 'd["jobId"]')
svc_stop
rm -rf out/later && ln -s ../outside out/later
python3 - "$WORK" <<'PY'
import sqlite3, sys
w = sys.argv[1]
db = sqlite3.connect(w + "/out/jobs.db")
db.execute("UPDATE jobs SET spec = replace(spec, ?, ?)",
           (w + "/blends/sub/other.blend", w + "/outside/secret.blend"))
db.commit()
PY
svc_start 3
ok $? "the service starts again"
http DELETE "/jobs/$L"
wait_state "$Q1" failed 20
ok $? "the job whose output directory became a symlink fails"
grep -q "symlink" "$WORK/body"
ok $? "its status says why ($(field 'd.get("error")'))"
wait_state "$Q2" failed 20
ok $? "the database record edited to name a scene outside the root fails"
is "$(find outside -name '*.png' | wc -l)" 1 "nothing was written outside the output root"

svc_stop

# Item 1: the resources a request may claim are explicit: frames per job (413) and frames of all
# unfinished jobs (429), each answer naming its limit.
svc_start 3 --max-frames 1000 --max-queued-frames 2500
ok $? "the service starts with --max-frames 1000 --max-queued-frames 2500"
http POST /render '{"from":1,"to":1001}'
is "$CODE" 413 "1001 frames -> 413"
grep -q -- "--max-frames" "$WORK/body"
ok $? "naming --max-frames ($(field 'd["error"]'))"
http POST /render '{"from":1,"to":1000,"output":"m1"}'
is "$CODE" 202 "1000 frames -> 202"
M1=$(field 'd["jobId"]')
http POST /render '{"from":1,"to":1000,"output":"m2"}'
is "$CODE" 202 "another 1000 -> 202"
M2=$(field 'd["jobId"]')
http POST /render '{"from":1,"to":1000,"output":"m3"}'
is "$CODE" 429 "a third 1000 (3000 > 2500 waiting) -> 429"
grep -q -- "--max-queued-frames" "$WORK/body"
ok $? "naming --max-queued-frames ($(field 'd["error"]'))"
http DELETE "/jobs/$M1"
wait_state "$M1" cancelled 10
http POST /render '{"from":1,"to":1000,"output":"m3"}'
is "$CODE" 202 "once a job is cancelled there is room again"
M3=$(field 'd["jobId"]')
http DELETE "/jobs/$M2"
http DELETE "/jobs/$M3"
svc_stop

# Item 6: one output directory, one owner. A second batch into a directory in use refuses (exit
# 2, naming the holder) instead of rendering every frame again.
FAKE_BLENDER_COST=0.5 "$DRENDER" -q -o "$WORK/shared/f_#" blends/shot.blend 1 6 >a.out 2>a.err &
A=$!
for _ in $(seq 100); do grep -qs pid shared/.drender-lock && break; sleep 0.1; done
"$DRENDER" -q -o "$WORK/shared/f_#" blends/shot.blend 1 6 >b.out 2>b.err
is $? 2 "a second batch into the same directory: exit 2"
grep -q "in use by another run or job (host .* pid $A" b.err
ok $? "naming the holder ($(head -c 300 b.err))"
wait $A
is $? 0 "the first batch finishes"
is "$(valid_pngs shared)" 6 "6 frames, rendered once"
svc_start 3
http POST /render '{"from":1,"to":500,"output":"same"}'
S1=$(field 'd["jobId"]')
wait_state "$S1" running 20
http POST /render '{"from":1,"to":2,"output":"same"}'
S2=$(field 'd["jobId"]')
wait_state "$S2" failed 20
ok $? "a second job into a directory in use fails"
grep -q "job $S1" "$WORK/body"
ok $? "naming the job that holds it ($(field 'd.get("error")'))"
http DELETE "/jobs/$S1"
wait_state "$S1" cancelled 20
http POST /render '{"from":1,"to":2,"output":"same"}'
S3=$(field 'd["jobId"]')
wait_state "$S3" done 20
ok $? "once the holder ended, the directory is free"
svc_stop

# Item 9: a missing or non-directory --blend-root is refused, naming the option.
"$DRENDER" --serve --listen 127.0.0.1:0 --blend-root "$WORK/nope" --output-root out >/dev/null 2>br.err
is $? 2 "a missing --blend-root: exit 2"
grep -q -- "--blend-root $WORK/nope: No such file" br.err
ok $? "naming the option ($(head -c 200 br.err))"
"$DRENDER" --serve --listen 127.0.0.1:0 --blend-root blends/shot.blend --output-root out >/dev/null 2>br.err
is $? 2 "a regular file as --blend-root: exit 2"
grep -q -- "--blend-root blends/shot.blend: is not a directory" br.err
ok $? "naming the option ($(head -c 200 br.err))"

is "$(leftovers)" 0 "no process left"
show_leftovers
done_testing
