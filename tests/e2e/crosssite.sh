#!/bin/bash
# End-to-end: cross-site requests and DNS rebinding against `drender --serve` without a token (the
# default on loopback), with curl (issue 24 item 2): POST bodies must be application/json (415),
# a Host that is not an address, localhost, this machine's name or an --allow-host name and a
# foreign Origin are refused (403 naming why); the dashboard's own requests (same Origin) go through.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl is not installed"
cd "$WORK" || exit 1
mkdir -p blends out
fake_scene blends/shot.blend
# 1 s a frame: a job is still queued or running when it is cancelled.
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_LOG=$WORK/blender.log FAKE_BLENDER_COST=1
unset DRENDER_TOKEN

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
# shellcheck disable=SC2034,SC2054 # read by svc_start (lib.sh); the commas are one value
SVC_ARGS=(--scene "$WORK/blends/shot.blend" --blend-root "$WORK/blends" --output-root "$WORK/out"
	--allow-host render.example,Farm.Local)
JOB='{"from":1,"to":4}'
# raw METHOD PATH [BODY] [CURL ARGS...]: like http (lib.sh), without its JSON Content-Type
raw() {
	local m=$1 p=$2 b=${3-}
	shift 2
	[ $# -gt 0 ] && shift
	CODE=$(curl -s -X "$m" -o "$WORK/body" -D "$WORK/head" -w '%{http_code}' \
		${b:+--data-binary "$b"} "$@" "$URL$p")
}
says() { # says TEXT: the last answer's "error" holds TEXT
	field 'd["error"]' | grep -qF -- "$1"
}

svc_start 2
ok $? "drender --serve (no token, --allow-host render.example,Farm.Local) starts"

# 1. What a page on another site can send without a preflight: form and text bodies.
raw POST /render "$JOB" -H 'Content-Type: text/plain' -H 'Origin: http://evil.example'
is "$CODE" 403 "POST text/plain from Origin http://evil.example -> 403"
says "Origin 'http://evil.example'"
ok $? "the answer names the Origin"
raw POST /render "$JOB" -H 'Content-Type: text/plain'
is "$CODE" 415 "POST /render as text/plain (no Origin) -> 415"
says "application/json"
ok $? "the answer names the type it wants"
raw POST /render "$JOB" -H 'Content-Type: application/x-www-form-urlencoded'
is "$CODE" 415 "POST /render as a form -> 415"
raw POST /render "$JOB"
is "$CODE" 415 "curl -d without a type (a form) -> 415"
raw POST /render "$JOB" -H 'Content-Type: multipart/form-data; boundary=x'
is "$CODE" 415 "POST /render as multipart -> 415"
http POST /render "$JOB" -H 'Origin: null'
is "$CODE" 403 "POST JSON with Origin: null (a sandboxed page) -> 403"
says "Origin 'null'"
ok $? "the answer names it"
http POST /render "$JOB" -H 'Origin: http://127.0.0.1.evil.example'
is "$CODE" 403 "POST with an Origin that only starts like ours -> 403"
http GET /jobs
is "$(field 'len(d["jobs"])')" 0 "no job was queued by any of them"

# 2. The dashboard: the page's own origin, JSON bodies.
http POST /render "$JOB" -H "Origin: http://127.0.0.1:$PORT"
is "$CODE" 202 "POST JSON from the page's own Origin -> 202"
ID=$(field 'd["jobId"]')
http POST /render "$JOB" -H 'Content-Type: application/json; charset=utf-8'
is "$CODE" 202 "application/json; charset=utf-8 -> 202"
http POST /render "$JOB" -H "Host: localhost:$PORT" -H "Origin: http://localhost:$PORT"
is "$CODE" 202 "Host localhost and its Origin -> 202"
http POST /render "$JOB" -H "Host: [::1]:$PORT"
is "$CODE" 202 "an IPv6 address as Host -> 202"

# 3. DNS rebinding: a name that leads here but is not ours.
raw DELETE "/jobs/$ID" "" -H "Host: attacker.example:$PORT"
is "$CODE" 403 "DELETE /jobs/<id> with Host attacker.example -> 403"
says "Host 'attacker.example:$PORT'"
ok $? "the answer names the Host"
says "--allow-host"
ok $? "and the option that allows a name"
http GET "/status/$ID"
st=$(field 'd["state"]')
ok "$([ "$st" = queued ] || [ "$st" = running ]; echo $?)" "the job was not cancelled ($st)"
raw GET /jobs "" -H "Host: attacker.example:$PORT"
is "$CODE" 403 "GET /jobs with Host attacker.example -> 403"
raw GET / "" -H "Host: attacker.example"
is "$CODE" 403 "the dashboard under that name -> 403"
raw GET /health "" -H "Host: attacker.example"
is "$CODE" 200 "GET /health answers whatever the Host (a probe)"
raw GET /jobs "" -H "Host: render.example:$PORT"
is "$CODE" 200 "an --allow-host name -> 200"
raw GET /jobs "" -H "Host: FARM.local"
is "$CODE" 200 "names compare without case -> 200"
raw GET /jobs "" -H "Host: $(hostname):$PORT"
is "$CODE" 200 "this machine's own name ($(hostname)) -> 200 (a container's peers use it)"
http POST /render "$JOB" -H "Host: 127.0.0.1:$PORT" -H 'Origin: https://render.example'
is "$CODE" 202 "an Origin with an --allow-host name (a proxy) -> 202"
raw DELETE "/jobs/$ID" "" -H "Origin: http://evil.example"
is "$CODE" 403 "DELETE from a foreign Origin -> 403"
raw DELETE "/jobs/$ID"
ok "$([ "$CODE" = 202 ] || [ "$CODE" = 200 ]; echo $?)" "DELETE /jobs/<id> from here -> $CODE"
svc_stop

# 4. A bad --allow-host is refused at start.
"${MPIRUN[@]}" -np 2 "$DRENDER" --serve --listen "127.0.0.1:$PORT" --output-root "$WORK/out" \
	--allow-host 'ok.example,bad host:80' >out4.txt 2>err4.txt
is $? 2 "--allow-host 'ok.example,bad host:80' -> exit 2"
grep -q -- '--allow-host' err4.txt
ok $? "the message names the option"

is "$(leftovers)" 0 "nothing left running"
[ "$T_FAILED" -eq 0 ] || sed 's/^/#   serve: /' serve.err | tail -n 30
done_testing
