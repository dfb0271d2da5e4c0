#!/bin/bash
# End-to-end: the rest of issue 10: a Blender that never finishes loading (--load-timeout, cancel
# kills it), HTTPS, the output directory's manifest, and smaller things.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl is not installed"
cd "$WORK" || exit 1
mkdir -p blends out
fake_scene blends/shot.blend
fake_scene blends/hang.blend
export FAKE_BLENDER_COST=0.1
unset DRENDER_TOKEN

# A Blender that answers --version and then hangs while "loading" a scene whose name says hang, or
# (HANG_FIRST) the first time it is started at all; anything else goes to the fake Blender.
cat >hang-blender <<SH
#!/bin/bash
[ "\$1" = --version ] && exec "$FAKE" "\$@"
case "\$*" in *hang.blend*) exec -a "hang-blender-$$" sleep 100000 ;; esac
[ -n "\${HANG_FIRST-}" ] && mkdir "\$HANG_FIRST" 2>/dev/null && exec -a "hang-blender-$$" sleep 100000
exec "$FAKE" "\$@"
SH
chmod +x hang-blender
hung() { pgrep -f "hang-blender-$$" | wc -l; }

# Item 2, batch: every Blender hangs while loading: the run ends within the bound, with the reason.
t0=$(date +%s)
timeout 60 "${MPIRUN[@]}" -np 3 "$DRENDER" --blender "$WORK/hang-blender" --load-timeout 2 \
	-o "$WORK/out/a/f_####" blends/hang.blend 1 4 >batch.out 2>batch.err
rc=$?
t1=$(date +%s)
ok $((rc == 0 || rc == 124)) "a batch whose Blenders never load fails (exit $rc, not a hang)"
ok $((t1 - t0 >= 30)) "and ends within the bound ($((t1 - t0)) s)"
grep -q -- "--load-timeout" batch.err
ok $? "the reason names --load-timeout" || sed 's/^/# /' batch.err
is "$(hung)" 0 "no hung Blender is left"

# Item 2, batch: one node's Blender hangs, the other renders every frame.
HANG_FIRST=$WORK/first timeout 60 "${MPIRUN[@]}" -np 3 "$DRENDER" --blender "$WORK/hang-blender" \
	--load-timeout 2 -o "$WORK/out/b/f_####" blends/shot.blend 1 4 >batch.out 2>batch.err
rc=$?
is "$rc" 0 "one node whose Blender never loads: the others render the frames" ||
	sed 's/^/# /' batch.err
is "$(valid_pngs out/b)" 4 "all 4 frames are there"
is "$(hung)" 0 "no hung Blender is left"

# Item 2, service: a job whose scene never loads is cancelled: that kills the loading Blenders and
# the next job runs (the load timeout, 300 s by default, is not what frees the nodes).
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
SERVE_PID=
start() { # start [OPTIONS...]: the service with 2 render nodes; waits until /health answers
	"${MPIRUN[@]}" -np 3 "$DRENDER" --serve --listen "${LISTEN:-127.0.0.1:$PORT}" \
		--blend-root "$WORK/blends" --output-root "$WORK/out" "$@" \
		>>"$WORK/serve.out" 2>>"$WORK/serve.err" &
	SERVE_PID=$!
	local _
	for _ in $(seq 150); do
		curl -s -k -o /dev/null "${URL}/health" && return 0
		kill -0 "$SERVE_PID" 2>/dev/null || return 1
		sleep 0.2
	done
	return 1
}
stop() {
	kill -TERM "$SERVE_PID" 2>/dev/null
	wait "$SERVE_PID" 2>/dev/null
	SERVE_PID=
}
http() { # http METHOD PATH [BODY]: sets CODE; the body is in $WORK/body
	local m=$1 p=$2 b=${3-}
	if [ -n "$b" ]; then
		CODE=$(curl -s -X "$m" -o "$WORK/body" -w '%{http_code}' --data-binary "$b" "$URL$p")
	else
		CODE=$(curl -s -X "$m" -o "$WORK/body" -w '%{http_code}' "$URL$p")
	fi
}
field() { json "$WORK/body" "$1" 2>/dev/null; }
wait_state() { # wait_state ID STATE [SECONDS]
	local _
	for _ in $(seq $((${3:-30} * 5))); do
		http GET "/status/$1"
		[ "$(field 'd["state"]')" = "$2" ] && return 0
		sleep 0.2
	done
	return 1
}
wait_hung() { # wait_hung N [SECONDS]: until N hung Blenders run
	local _
	for _ in $(seq $((${2:-30} * 5))); do
		[ "$(hung)" -ge "$1" ] && return 0
		sleep 0.2
	done
	return 1
}

start --blender "$WORK/hang-blender"
ok $? "drender --serve starts"
http POST /render '{"blend":"hang.blend","from":1,"to":4,"output":"hang"}'
H=$(field 'd["jobId"]')
is "$CODE" 202 "a job whose scene never loads is accepted"
wait_hung 2
ok $? "both render nodes are stuck loading it"
http DELETE "/jobs/$H"
ok $((CODE >= 300)) "it is cancelled ($CODE)"
for _ in $(seq 50); do [ "$(hung)" = 0 ] && break; sleep 0.2; done
is "$(hung)" 0 "cancel killed the loading Blenders"
http POST /render '{"blend":"shot.blend","from":1,"to":3,"output":"next"}'
N=$(field 'd["jobId"]')
wait_state "$N" "done" 30
ok $? "the next job runs and finishes" || sed 's/^/# /' serve.err | tail -20
stop

# Item 10: HTTPS with a certificate the test makes; plain HTTP is refused on that port; a
# non-loopback address without TLS says loudly that the token travels in clear text.
if command -v openssl >/dev/null; then
	openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1 \
		-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
	ok $? "a self-signed certificate is made"
	URL=https://127.0.0.1:$PORT
	start --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"
	ok $? "drender --serve --tls-cert --tls-key starts"
	code=$(curl -s -o body --cacert cert.pem -w '%{http_code}' "$URL/health")
	is "$code" 200 "GET /health over HTTPS, checked against the certificate: 200"
	code=$(curl -s -o body --cacert cert.pem -w '%{http_code}' --data-binary \
		'{"blend":"shot.blend","from":1,"to":1,"output":"tls"}' "$URL/render")
	is "$code" 202 "POST /render over HTTPS: 202"
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")
	ok $((code == 200)) "plain HTTP on the HTTPS port gets no answer ($code)"
	code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")
	ok $((code == 200)) "an unchecked certificate is refused by curl ($code)"
	stop
	grep -q "clear text" serve.err
	ok $((! $?)) "no clear-text warning with TLS"
	URL=http://127.0.0.1:$PORT
	LISTEN=0.0.0.0:$PORT start --token sekrit
	ok $? "drender --serve --listen 0.0.0.0 --token without TLS starts"
	stop
	grep -q "WARNING: 0.0.0.0:$PORT is served over plain HTTP.*clear text" serve.err
	ok $? "and warns that the token travels in clear text"
	"${MPIRUN[@]}" -np 2 "$DRENDER" --serve --listen "127.0.0.1:$PORT" --tls-cert cert.pem \
		--blend-root blends --output-root out >/dev/null 2>tls.err
	is $? 2 "--tls-cert without --tls-key: exit 2"
	grep -q "both --tls-cert FILE and --tls-key FILE" tls.err
	ok $? "naming both options"
fi

done_testing
