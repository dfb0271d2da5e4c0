#!/bin/bash
# End-to-end: the rest of issue 10: a Blender that never finishes loading (--load-timeout, cancel
# kills it), HTTPS, the output directory's manifest, and smaller things.
. "$(dirname "$0")/lib.sh"
# The service (svc_setup, svc_start: lib.sh) on $LISTEN or $PORT; each start names its Blender.
svc_setup
# shellcheck disable=SC2034 # read by svc_start (lib.sh)
SVC_ARGS=(--blend-root "$WORK/blends" --output-root "$WORK/out")
fake_scene blends/hang.blend
fake_scene blends/other.blend
export FAKE_BLENDER_COST=0.1

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

# Item 6, batch: frames are skipped only when they were made from the same scene and settings.
run() { "${MPIRUN[@]}" -np 2 "$DRENDER" -o "$WORK/out/m/f_####" "$@" >m.out 2>m.err; }
export DRENDER_BLENDER=$FAKE
run blends/shot.blend 1 2
is $? 0 "a run renders into a new directory"
test -f out/m/.drender-manifest.json
ok $? "and leaves a manifest there"
run --samples 8 blends/shot.blend 1 2
is $? 2 "a run with other settings into it: exit 2"
grep -q "samples 0, not 8" m.err
ok $? "naming the difference" || sed 's/^/# /' m.err
run blends/other.blend 1 2
is $? 2 "a run of another scene into it: exit 2"
run --overwrite --samples 8 blends/shot.blend 1 2
is $? 0 "--overwrite renders them again"
run --samples 8 blends/shot.blend 1 3
is $? 0 "and then the same settings resume"
grep -q "2 of 3 frames already exist" m.err
ok $? "skipping the frames already there" || sed 's/^/# /' m.err
unset DRENDER_BLENDER

# Item 2, service: a job whose scene never loads is cancelled: that kills the loading Blenders and
# the next job runs (the load timeout, 300 s by default, is not what frees the nodes).
hung_at_least() { [ "$(hung)" -ge "$1" ]; }
none_hung() { [ "$(hung)" -eq 0 ]; }

svc_start 3 --blender "$WORK/hang-blender"
ok $? "drender --serve starts"
http POST /render '{"blend":"hang.blend","from":1,"to":4,"output":"hang"}'
H=$(field 'd["jobId"]')
is "$CODE" 202 "a job whose scene never loads is accepted"
wait_for 30 hung_at_least 2
ok $? "both render nodes are stuck loading it"
http DELETE "/jobs/$H"
ok $((CODE >= 300)) "it is cancelled ($CODE)"
wait_for 10 none_hung
is "$(hung)" 0 "cancel killed the loading Blenders"
http POST /render '{"blend":"shot.blend","from":1,"to":3,"output":"next"}'
N=$(field 'd["jobId"]')
wait_state "$N" "done" 30
ok $? "the next job runs and finishes" || sed 's/^/# /' serve.err | tail -20

# Item 6, service: a job into a directory whose frames come from another scene is refused (409).
http POST /render '{"blend":"other.blend","from":1,"to":3,"output":"next"}'
is "$CODE" 409 "another scene into a job's output directory: 409"
grep -q "other.blend" body && grep -q "shot.blend" body
ok $? "naming both scenes: $(cat body)"
http POST /render '{"blend":"shot.blend","from":1,"to":3,"output":"next"}'
is "$CODE" 202 "the same scene and settings again: 202"
svc_stop

# Item 9: a .blend that is not one is refused at submission; held-ahead frames are not "running";
# broken connections do not flood the log; Blender's command line names the driver's file.
printf 'not a blend file\n' >blends/junk.blend
mkdir -p tmp && chmod 700 tmp
URL=http://127.0.0.1:$PORT
: >serve.err
TMPDIR=$WORK/tmp FAKE_BLENDER_LOG=$WORK/fake.log FAKE_BLENDER_COST=0.5 svc_start 3 --blender "$FAKE"
ok $? "drender --serve starts again"
http POST /render '{"blend":"junk.blend","from":1,"to":2}'
is "$CODE" 400 "a .blend that is not a Blender file: 400 at submission"
grep -q "blend" body && grep -qi "not a Blender scene" body
ok $? "saying why: $(cat body)"
http POST /render '{"blend":"shot.blend","from":1,"to":12,"output":"held"}'
R=$(field 'd["jobId"]')
maxrun=0
for _ in $(seq 20); do
	http GET "/status/$R"
	n=$(field 'd["frames"]["running"]')
	[ "${n:-0}" -gt "$maxrun" ] && maxrun=$n
	sleep 0.2
done
ok $((maxrun < 1 || maxrun > 2)) "frames.running counts only frames the 2 nodes have started (max $maxrun)"
pid=$(awk '$1 == "start" { p = $2 } END { print p }' fake.log)
len=$(tr -d '\0' <"/proc/$pid/cmdline" 2>/dev/null | wc -c)
ok $((len == 0 || len > 2000)) "Blender's command line is short ($len bytes), not the 10 KB driver"
drv=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -A1 -x -- --python | tail -1)
case $drv in "$WORK"/tmp/drender-*/driver-*.py) r=0 ;; *) r=1 ;; esac
ok $r "it runs the driver from a private file ($drv)"
is "$(stat -c %a "$(dirname "$drv")") $(stat -c %a "$drv")" "700 600" "in a 0700 directory, mode 0600"
wait_state "$R" "done" 30
ok $? "that job finishes"
python3 - "$PORT" <<'PY'
import socket, sys
for _ in range(200):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b"POST /render HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    s.close()
PY
http GET /health
is "$CODE" 200 "200 half-open connections closed: the service answers"
svc_stop
lines=$(grep -c "http:" serve.err)
ok $((lines > 12)) "and logs a few lines about them, not one each ($lines)"

# Item 10: HTTPS with a certificate the test makes; plain HTTP is refused on that port; a
# non-loopback address without TLS says loudly that the token travels in clear text.
if command -v openssl >/dev/null; then
	openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1 \
		-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
	ok $? "a self-signed certificate is made"
	URL=https://127.0.0.1:$PORT
	svc_start 3 --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"
	ok $? "drender --serve --tls-cert --tls-key starts"
	code=$(curl -s -o body --cacert cert.pem -w '%{http_code}' "$URL/health")
	is "$code" 200 "GET /health over HTTPS, checked against the certificate: 200"
	code=$(curl -s -o body --cacert cert.pem -w '%{http_code}' -H 'Content-Type: application/json' --data-binary \
		'{"blend":"shot.blend","from":1,"to":1,"output":"tls"}' "$URL/render")
	is "$code" 202 "POST /render over HTTPS: 202"
	code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")
	ok $((code == 200)) "plain HTTP on the HTTPS port gets no answer ($code)"
	code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/health")
	ok $((code == 200)) "an unchecked certificate is refused by curl ($code)"
	svc_stop
	grep -q "clear text" serve.err
	ok $((! $?)) "no clear-text warning with TLS"
	URL=http://127.0.0.1:$PORT
	LISTEN=0.0.0.0:$PORT svc_start 3 --token sekrit-sekrit-sekrit
	ok $? "drender --serve --listen 0.0.0.0 --token without TLS starts"
	svc_stop
	grep -q "WARNING: 0.0.0.0:$PORT is served over plain HTTP.*clear text" serve.err
	ok $? "and warns that the token travels in clear text"
	"${MPIRUN[@]}" -np 2 "$DRENDER" --serve --listen "127.0.0.1:$PORT" --tls-cert cert.pem \
		--blend-root blends --output-root out >/dev/null 2>tls.err
	is $? 2 "--tls-cert without --tls-key: exit 2"
	grep -q "both --tls-cert FILE and --tls-key FILE" tls.err
	ok $? "naming both options"
fi

done_testing
