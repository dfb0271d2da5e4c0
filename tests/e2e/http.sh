#!/bin/bash
# End-to-end: curl against a real `mpirun -np 3 drender --serve` with the fake Blender: the tutorial
# client flow, several jobs, cancel, restart-and-resume, bad inputs, limits and the token.
. "$(dirname "$0")/lib.sh"
# The service (svc_setup, svc_start: lib.sh) on $PORT; `svc_start 3` has 2 render nodes.
svc_setup
mkdir -p blends/sub outside
fake_scene blends/sub/other.blend
fake_scene outside/secret.blend
ln -s ../outside/secret.blend blends/escape.blend
# 0.2 s a frame: 2 render nodes do 10 frames a second, slow enough to poll, cancel and stop.
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_LOG=$WORK/blender.log FAKE_BLENDER_COST=0.2

svc_start 3
ok $? "drender --serve starts with 2 render nodes and answers /health"

# 1. The tutorial client: POST, poll the Location until 200, frames on disk.
http POST /render '{"from":1,"to":20}'
is "$CODE" 202 "POST /render -> 202"
ID=$(field 'd["jobId"]')
[ -n "$ID" ]
ok $? "jobId in the answer ($ID)"
LOC=$(header Location)
is "$LOC" "/status/$ID" "Location: /status/<id>"
http GET "$LOC"
is "$CODE" 202 "GET /status/<id> right away -> 202"
is "$(header Retry-After)" 2 "with Retry-After: 2"
polls=0
while [ "$CODE" = 202 ] && [ $polls -lt 300 ]; do
	sleep 0.2
	polls=$((polls + 1))
	http GET "$LOC"
done
is "$CODE" 200 "polling ends with 200"
is "$(field 'd["state"]')" "done" "state done"
is "$(field 'd["frames"]["done"]')" 20 "20 frames done"
is "$(field 'd["progress"]')" 1 "progress 1"
is "$(valid_pngs "out/$ID")" 20 "20 complete PNGs in out/<id>/"
http GET "/jobs/$ID/frames/7"
is "$CODE" 200 "GET /jobs/<id>/frames/7"
is "$(header Content-Type)" image/png "Content-Type: image/png"
check "the frame's bytes" -- cmp "$WORK/body" "out/$ID/shot_0007.png"
http GET "/jobs/$ID/frames/21"
is "$CODE" 404 "frame outside the job -> 404"

# 2. Several jobs at once, with names, scenes and priorities.
http POST /render '{"frames":"1-6"}'
A=$(field 'd["jobId"]')
http POST /render '{"frames":"1-4","output":"named","priority":5}'
B=$(field 'd["jobId"]')
http POST /render '{"from":1,"to":3,"blend":"sub/other.blend","format":"JPEG"}'
C=$(field 'd["jobId"]')
if wait_state "$A" "done" 20 && wait_state "$B" "done" 20 && wait_state "$C" "done" 20; then
	ok 0 "three queued jobs all finish"
else
	ok 1 "three queued jobs all finish"
	curl -s "$URL/jobs" | sed 's/^/#   /'
fi
is "$(valid_pngs out/"$A")" 6 "job A: 6 frames"
is "$(valid_pngs out/named)" 4 "job B: 4 frames under its \"output\" name"
check "job C: other scene, JPEG frames" -- test -f "out/$C/other_0003.jpg"
http GET /jobs
is "$(field '[j["jobId"] for j in d["jobs"]][:4]')" "['$C', '$B', '$A', '$ID']" "GET /jobs: newest first"
http GET /status
is "$CODE" 200 "GET /status lists the jobs too"

# 3. Cancel: frames in flight stop, finished frames stay.
http POST /render '{"from":1,"to":40,"output":"cancelme"}'
K=$(field 'd["jobId"]')
wait_state "$K" running
sleep 1
http DELETE "/jobs/$K"
is "$CODE" 202 "DELETE a running job -> 202"
is "$(field 'd["state"]')" cancelling "state cancelling"
wait_state "$K" cancelled 15
ok $? "the job ends cancelled"
n1=$(find out/cancelme -name '*.png' | wc -l)
sleep 1
n2=$(find out/cancelme -name '*.png' | wc -l)
[ "$n1" -gt 0 ] && [ "$n1" -lt 40 ]
ok $? "some frames kept ($n1 of 40)"
is "$n2" "$n1" "no frame written after the cancel"
is "$(tmpfiles out/cancelme)" 0 "no temporary files left"
http DELETE "/jobs/$K"
is "$CODE" 200 "DELETE a finished job -> 200"
http DELETE /jobs/000000000000
is "$CODE" 404 "DELETE an unknown job -> 404"

# 4. Restart and resume: the journal brings jobs back; frames on disk are not rendered again.
http POST /render '{"from":1,"to":30,"output":"resume"}'
R=$(field 'd["jobId"]')
wait_for 20 has_files 6 out/resume
svc_stop
before=$(find out/resume -name '*.png' | wc -l)
[ "$before" -gt 0 ] && [ "$before" -lt 30 ]
ok $? "stopped mid-job ($before of 30 on disk)"
find out/resume -name '*.png' | sed 's/.*_0*//; s/\.png//' | sort >before.txt
: >"$FAKE_BLENDER_LOG"
FAKE_BLENDER_COST=0.05
svc_start 3
ok $? "the service starts again"
wait_state "$R" "done" 30
ok $? "the unfinished job resumes and finishes"
is "$(valid_pngs out/resume)" 30 "30 frames on disk"
is "$(field 'd["frames"]["skipped"]')" "$before" "frames on disk counted as skipped"
again=$(awk '$1 == "render" {print $3}' "$FAKE_BLENDER_LOG" | sort | comm -12 - before.txt | wc -l)
is "$again" 0 "no frame rendered before the restart was rendered again"
http GET "/status/$ID"
is "$CODE:$(field 'd["state"]'):$(field 'd["frames"]["done"]')" 200:done:20 "a finished job is listed as it ended"
http GET "/status/$K"
is "$(field 'd["state"]')" cancelled "the cancelled job stays cancelled"

# 5. Bad inputs: the right status and a message naming the field; nothing runs.
jobs_before=$(curl -s "$URL/jobs" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')
bad() { # bad DESCRIPTION STATUS PATTERN BODY
	http POST /render "$4"
	is "$CODE" "$2" "$1 -> $2"
	field 'd["error"]' | grep -Eq -- "$3"
	ok $? "$1: error says /$3/ ($(field 'd["error"]'))"
}
bad "malformed JSON" 400 "malformed JSON" '{"from":1,'
bad "not an object" 400 "JSON object" '[1,20]'
bad "backwards range" 400 '"to"' '{"from":9,"to":2}'
bad "string frame" 400 '"from"' '{"from":"1","to":2}'
bad "absurd frame count" 400 '"frames"' '{"frames":"0-1048574"}'
bad "unknown field" 400 '"colour"' '{"from":1,"to":2,"colour":"red"}'
bad "duplicate field" 400 '"to" is given twice' '{"from":1,"to":2,"to":3}'
bad "unknown engine" 400 '"engine"' '{"from":1,"to":2,"engine":"povray"}'
bad "movie format" 400 '"format"' '{"from":1,"to":2,"format":"FFMPEG"}'
bad "samples 0" 400 '"samples"' '{"from":1,"to":2,"samples":0}'
bad "absolute blend" 403 '"blend"' '{"from":1,"to":2,"blend":"/etc/passwd"}'
bad "blend with .." 403 '"blend"' '{"from":1,"to":2,"blend":"../outside/secret.blend"}'
bad "blend symlink leaving the root" 403 'escapes' '{"from":1,"to":2,"blend":"escape.blend"}'
bad "missing blend" 404 'does not exist' '{"from":1,"to":2,"blend":"nope.blend"}'
bad "output with .." 403 '"output"' '{"from":1,"to":2,"output":"../x"}'
bad "output path" 400 '"output"' '{"from":1,"to":2,"output":"a/b"}'
python3 -c 'print("{\"from\":1,\"to\":2,\"x\":\"" + "a" * 70000 + "\"}")' >big.json
CODE=$(curl -s -o "$WORK/body" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary @big.json "$URL/render")
is "$CODE" 413 "70 KB body -> 413"
http GET /status/000000000000
is "$CODE" 404 "unknown job -> 404"
http GET /nowhere
is "$CODE" 404 "unknown path -> 404"
http PUT /render '{}'
is "$CODE:$(header Allow)" 405:POST "PUT /render -> 405, Allow: POST"
http DELETE "/status/$ID"
is "$CODE" 405 "DELETE /status/<id> -> 405"
is "$(curl -s "$URL/jobs" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["jobs"]))')" "$jobs_before" "no bad request made a job"
http GET /metrics
is "$CODE" 200 "GET /metrics"
grep -q '^drender_frames_total{outcome="done"} [1-9]' "$WORK/body"
ok $? "metrics count done frames"
grep -q '^drender_frame_render_seconds_bucket{le="+Inf"} [1-9]' "$WORK/body"
ok $? "metrics have the render-time histogram"

# 6. The request rate per client: a burst beyond the bucket gets 429 with Retry-After.
urls=()
for _ in $(seq 300); do urls+=(-o /dev/null "$URL/status/$ID"); done
codes=$(curl -s -w '%{http_code}\n' "${urls[@]}" | sort | uniq -c | tr -s ' ')
echo "$codes" | grep -q ' 429$'
ok $? "a 300-request burst meets 429 ($(echo "$codes" | tr '\n' ' '))"
sleep 2
http GET "/status/$ID"
is "$CODE" 200 "served again after a pause"
svc_stop
is "$(leftovers)" 0 "the service stopped with nothing left running"

# 7. Token, queue limit, and listening beyond loopback.
FAKE_BLENDER_COST=0.5
# (Frames 9001 and 9003 always fail: no job but the last one here asks for them.)
DRENDER_TOKEN=s3cret FAKE_BLENDER_FAIL=9003,9001 svc_start 3 --max-queued 1 --retries 1
ok $? "starts with DRENDER_TOKEN and --max-queued 1"
http GET /jobs
is "$CODE" 401 "no token -> 401"
is "$(header WWW-Authenticate | cut -d' ' -f1)" Bearer "WWW-Authenticate: Bearer"
http GET /jobs '' -H 'Authorization: Bearer wrong'
is "$CODE" 401 "wrong token -> 401"
http POST /render '{"from":1,"to":2}'
is "$CODE" 401 "POST without the token -> 401"
http GET /health
is "$CODE" 200 "health needs no token"
http GET /jobs '' -H 'Authorization: Bearer s3cret'
is "$CODE" 200 "right token -> 200"
http POST /render '{"from":1,"to":8,"output":"q1"}' -H 'Authorization: Bearer s3cret'
Q1=$(field 'd["jobId"]')
wait_state "$Q1" running 10 -H 'Authorization: Bearer s3cret' >/dev/null
http POST /render '{"from":1,"to":2,"output":"q2"}' -H 'Authorization: Bearer s3cret'
is "$CODE" 202 "one job may wait"
http POST /render '{"from":1,"to":2,"output":"q3"}' -H 'Authorization: Bearer s3cret'
is "$CODE" 429 "a second waiting job -> 429"
[ -n "$(header Retry-After)" ]
ok $? "with Retry-After"

# 8. A job with failing frames lists them in "failedFrames", in frame order, with their errors.
wait_state "$Q1" "done" 60 -H 'Authorization: Bearer s3cret'
ok $? "the queue drains"
http POST /render '{"from":9001,"to":9004,"output":"failing"}' -H 'Authorization: Bearer s3cret'
F=$(field 'd["jobId"]')
wait_state "$F" "failed" 60 -H 'Authorization: Bearer s3cret'
ok $? "a job with two always-failing frames ends failed"
is "$(field '" ".join("%d/%d" % (f["frame"], f["attempts"]) for f in d["failedFrames"])')" \
	"9001/2 9003/2" "failedFrames: frames 9001 and 9003, 2 attempts each, in frame order"
field '"fake Python error at frame 9003" in d["failedFrames"][1]["error"]' | grep -qx True
ok $? "failedFrames: each with its own error"
is "$(field 'd["frames"]["failed"]')/$(field 'd["frames"]["done"]')" 2/2 \
	"the counts agree: 2 failed, 2 done"
svc_stop

"$DRENDER" --serve --listen "0.0.0.0:$PORT" --output-root "$WORK/out" >out7.txt 2>err7.txt
is $? 2 "listening on 0.0.0.0 without a token: exit 2"
grep -q 'needs --token or DRENDER_TOKEN' err7.txt
ok $? "says it needs --token or DRENDER_TOKEN"
is "$(leftovers)" 0 "nothing left running"
[ "$T_FAILED" -eq 0 ] || sed 's/^/#   serve: /' serve.err | tail -n 30
done_testing
