#!/bin/bash
# End-to-end: a still and a video through POST /render on `mpirun -np 3 drender --serve`: the
# video is encoded at the job's end while the service keeps answering (a slowed FFmpeg), its state
# is in /status and it is served at GET /jobs/<id>/video; a still split by samples is merged by a
# render node (real Blender); bad still/split/video fields are 400s naming the field.
. "$(dirname "$0")/lib.sh"
command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null ||
	skip_all "ffmpeg is not installed (scripts/install-deps.sh installs it)"
# The service (svc_setup, svc_start: lib.sh) on $PORT.
svc_setup
mkdir -p bin
# FFmpeg that holds the encode until the test has looked at the service meanwhile (it creates
# encode.go; at most 30 s): the encode must not hold rank 0's loop. (A fixed delay raced with a
# loaded machine: the checks "while encoding" could come after the end of the encode.)
cat >bin/ffmpeg <<EOF
#!/bin/sh
i=0
while [ ! -e "$WORK/encode.go" ] && [ \$i -lt 600 ]; do sleep 0.05; i=\$((i + 1)); done
exec $(command -v ffmpeg) "\$@"
EOF
chmod +x bin/ffmpeg
export PATH=$WORK/bin:$PATH
export FAKE_BLENDER_FPS=25 FAKE_BLENDER_COST=0.05

start() { # start BLENDER: the service with 2 render nodes; waits until /health answers
	svc_start 3 --blender "$1" --blend-root "$WORK/blends" --output-root "$WORK/out"
}
probe() { # probe FILE: "<frames> <rate>" as ffprobe counts them
	ffprobe -v error -count_frames -select_streams v:0 \
		-show_entries stream=nb_read_frames,r_frame_rate -of default=noprint_wrappers=1 "$1" |
		sort | sed 's/.*=//' | tr '\n' ' '
}
now() { date +%s.%N; }

start "$FAKE"
ok $? "drender --serve starts (fake Blender)"

# 1. Validation: 400s that name the field.
for body in '{"still":3,"from":1,"to":2}|"still" names the frame' \
	'{"still":3,"split":1}|"split"' '{"still":3,"split":"many"}|"split" must be "auto"' \
	'{"from":1,"to":2,"split":4}|"split" cuts a still' '{"still":3,"video":true}|"video"' \
	'{"from":1,"to":2,"video":"yes"}|"video" must be true or false' \
	'{"from":1,"to":2,"fps":12}|"fps"' '{"from":1,"to":2,"video":true,"fps":-1}|"fps"'; do
	b=${body%%|*}
	http POST /render "{\"blend\":\"shot.blend\",${b#\{}"
	is "$CODE" 400 "POST ${body%%|*} -> 400"
	field 'd["error"]' | grep -qF "${body#*|}"
	ok $? "  names ${body#*|}: $(field 'd.get("error")')"
done

# 2. A video: 8 frames at 12 fps; during the (slowed) encode /health answers and /status says so.
http POST /render '{"blend":"shot.blend","from":1,"to":8,"video":true,"fps":12}'
is "$CODE" 202 "POST with \"video\": true -> 202"
ID=$(field 'd["jobId"]')
http GET "/jobs/$ID/video"
is "$CODE" 404 "GET /jobs/<id>/video before it is made -> 404"
encoding=1
for _ in $(seq 300); do
	http GET "/status/$ID"
	[ "$(field 'd.get("video", {}).get("state")')" = encoding ] && { encoding=0; break; }
	sleep 0.1
done
ok $encoding "/status shows the video encoding"
is "$(field 'd["state"]')" running "  the job is running until the video is made"
t0=$(now)
http GET /health
t1=$(now)
is "$CODE" 200 "  /health answers during the encode"
ok $([ "$(echo "$t1 - $t0 < 1" | bc)" = 1 ] && echo 0 || echo 1) "  in $(echo "$t1 - $t0" | bc) s"
http GET "/jobs/$ID/video"
is "$CODE" 404 "  GET /jobs/<id>/video while encoding -> 404"
: >"$WORK/encode.go" # let the encode finish
wait_state "$ID" done 60
ok $? "the job ends done"
is "$(field '(d["video"]["state"], d["video"]["fps"])')" "('made', 12)" "  /status: video made at 12 fps"
http GET "/jobs/$ID/video"
is "$CODE" 200 "GET /jobs/<id>/video -> 200"
is "$(header Content-Type)" video/mp4 "  Content-Type: video/mp4"
cp body served.mp4
is "$(probe served.mp4)" "8 12/1 " "  ffprobe: the served file has 8 frames at 12 fps"
http GET "/jobs/nope/video"
is "$CODE" 404 "GET /jobs/<unknown>/video -> 404"

# 3. A job that asked for no video: 404 that says so.
http POST /render '{"blend":"shot.blend","from":1,"to":2}'
ID2=$(field 'd["jobId"]')
wait_state "$ID2" done 30
http GET "/jobs/$ID2/video"
is "$CODE" 404 "no video asked -> 404"
grep -q 'asked for no video' body
ok $? "  and says so"

# 4. The video is confined to the output root: replaced by a symlink leading out -> refused.
http GET "/status/$ID"
vpath=$(field 'd["video"]["path"]')
echo secret >outside.txt
rm -f "$vpath" && ln -s "$WORK/outside.txt" "$vpath"
http GET "/jobs/$ID/video"
ok $([ "$CODE" = 403 ] || [ "$CODE" = 404 ] && echo 0 || echo 1) "a video replaced by a symlink out of the root -> $CODE, not served"
svc_stop

# 5. A still over HTTP (real Blender): split in 4, merged by a render node.
if command -v blender >/dev/null && [ -z "${DR_E2E_FAST_ONLY:-}" ]; then
	blender -b --factory-startup --python-exit-code 1 --python "$TOP/tests/fixtures/make_still.py" \
		-- "$WORK/blends/c.blend" "$WORK/e.blend" >make.log 2>&1
	ok $? "still scene built"
	start blender
	ok $? "drender --serve starts (real Blender)"
	http POST /render '{"blend":"c.blend","still":3,"split":4,"format":"OPEN_EXR","output":"st"}'
	is "$CODE" 202 "POST {\"still\":3,\"split\":4} -> 202"
	SID=$(field 'd["jobId"]')
	wait_state "$SID" done 240
	ok $? "the still job ends done" || sed 's/^/#   /' serve.err | tail -20
	is "$(field '(d["still"]["state"], d["still"]["ranges"], d["still"]["samples"], d["still"]["mergedBy"] in (1, 2))')" \
		"('made', 4, 64, True)" "  /status: still made from 4 ranges, 64 samples, merged by a render node"
	ok $([ -s out/st/c_0003.exr ] && echo 0 || echo 1) "  out/st/c_0003.exr is there"
	is "$(ls out/st | grep -c range)" 0 "  the ranges are removed"
	grep -q "$SID: still frame 3: 4 ranges merged by rank [12] " serve.err
	ok $? "  the log names the rank that merged"
	svc_stop
fi

is "$(leftovers)" 0 "nothing left running"
done_testing
