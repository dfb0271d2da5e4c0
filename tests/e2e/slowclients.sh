#!/bin/bash
# End-to-end: idle and slow clients cannot take the HTTP service down (issue 24 item 1). While
# 600 idle connections (more than the connection limit) and 100 slowloris ones (a header line
# every 2 s) are held against `drender --serve`, /health and GET /jobs still answer, quickly; the
# service cuts connections that send no complete request within its header deadline, and serves
# as before once they are gone. The same with TLS: handshakes never started or left half-way.
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl is not installed"
cd "$WORK" || exit 1
mkdir -p blends out
fake_scene blends/shot.blend
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_LOG=$WORK/blender.log FAKE_BLENDER_COST=0.1
unset DRENDER_TOKEN
[ "$(ulimit -n)" -ge 2048 ] || ulimit -n 4096 2>/dev/null ||
	skip_all "needs 2048 open files (ulimit -n is $(ulimit -n))"

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
# shellcheck disable=SC2034 # read by svc_start (lib.sh)
SVC_ARGS=(--scene "$WORK/blends/shot.blend" --blend-root "$WORK/blends" --output-root "$WORK/out")
svc_start 2
ok $? "drender --serve starts"

# The attack and the probes, from one process: prints "KEY VALUE" lines.
python3 - "$PORT" >attack.txt 2>attack.err <<'PY'
import socket, sys, threading, time
port = int(sys.argv[1])
idle, slow = [], []
def conn():
    s = socket.socket()
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s
for _ in range(600):
    try:
        idle.append(conn())
    except OSError:
        pass
for _ in range(100):
    try:
        s = conn()
        s.sendall(b"GET /jobs HTTP/1.1\r\nHost: localhost\r\n")
        slow.append(s)
    except OSError:
        pass
print("held", len(idle) + len(slow))
stop = False
def trickle():
    n = 0
    while not stop:
        time.sleep(2)
        n += 1
        for s in slow:
            try:
                s.sendall(b"X-Slow-%d: x\r\n" % n)
            except OSError:
                pass
threading.Thread(target=trickle, daemon=True).start()
def probe(path):
    t = time.monotonic()
    try:
        s = conn()
        s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path)
        data = s.recv(64)
        s.close()
        ok = data.startswith(b"HTTP/1.1 200")
    except OSError:
        ok = False
    return ok, time.monotonic() - t
lat, fails = [], 0
t_end = time.monotonic() + 15 # past the header deadline: the attack goes on, cut and all
while time.monotonic() < t_end:
    for path in (b"/health", b"/jobs"):
        ok, dt = probe(path)
        fails += not ok
        lat.append(dt)
    # the attacker reconnects what was cut, as a real one would
    for i, s in enumerate(idle):
        try:
            s.setblocking(False)
            if s.recv(1) == b"":
                raise OSError
        except BlockingIOError:
            continue
        except OSError:
            try:
                idle[i] = conn()
            except OSError:
                pass
    time.sleep(0.2)
stop = True
lat.sort()
print("probes", len(lat))
print("failed", fails)
print("p50_ms", int(lat[len(lat) // 2] * 1000))
print("p99_ms", int(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000))
closed = 0
for s in slow:
    try:
        s.setblocking(True)
        s.settimeout(0.5)
        if s.recv(1) == b"":
            closed += 1
    except OSError:
        closed += 1
print("slow_cut", closed)
for s in idle + slow:
    s.close()
PY
ok $? "the attack script ran"
cat attack.err >&2
val() { awk -v k="$1" '$1 == k { print $2 }' attack.txt; }
held=$(val held)
[ "${held:-0}" -ge 600 ]
ok $? "held $held idle and slowloris connections against a limit of 512"
probes=$(val probes)
[ "${probes:-0}" -ge 6 ]
ok $? "probed /health and /jobs $probes times meanwhile"
is "$(val failed)" 0 "every probe got 200 (p50 $(val p50_ms) ms, p99 $(val p99_ms) ms)"
[ "$(val p99_ms)" -lt 2000 ]
ok $? "p99 under 2 s ($(val p99_ms) ms)"
[ "$(val slow_cut)" -ge 90 ]
ok $? "the slowloris connections were cut at the header deadline ($(val slow_cut) of 100)"
http GET /health
is "$CODE" 200 "the service answers once they are gone"
http POST /render '{"from":1,"to":2}'
is "$CODE" 202 "and takes a job"
svc_stop

# The same with TLS: 600 connections that never start their handshake (or stop half-way).
if command -v openssl >/dev/null; then
	openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 1 \
		-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 >/dev/null 2>&1
	URL=https://127.0.0.1:$PORT
	svc_start 2 --tls-cert "$WORK/cert.pem" --tls-key "$WORK/key.pem"
	ok $? "drender --serve over HTTPS starts"
	python3 - "$PORT" >tls.txt 2>tls.err <<'PY' &
import socket, sys, time
held = []
for i in range(600):
    try:
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
        if i % 2: # half of them send the start of a ClientHello and stop
            s.sendall(bytes([22, 3, 1, 2, 0, 1, 0, 1, 252, 3, 3]))
        held.append(s)
    except OSError:
        pass
print("held", len(held), flush=True)
time.sleep(14)
PY
	attacker=$!
	for _ in $(seq 50); do grep -q held tls.txt 2>/dev/null && break; sleep 0.2; done
	good=0 slow=0
	for _ in $(seq 10); do
		t0=$(date +%s%N)
		code=$(curl -s -m 3 -o /dev/null --cacert cert.pem -w '%{http_code}' "$URL/health")
		t=$((($(date +%s%N) - t0) / 1000000))
		[ "$code" = 200 ] && good=$((good + 1))
		[ "$t" -gt "$slow" ] && slow=$t
		sleep 0.5
	done
	is "$good" 10 "HTTPS /health answers 10 of 10 while $(awk '{print $2}' tls.txt) handshakes are held (slowest $slow ms)"
	wait "$attacker"
	svc_stop
fi
is "$(leftovers)" 0 "nothing left running"
[ "$T_FAILED" -eq 0 ] || sed 's/^/#   serve: /' serve.err | tail -n 30
done_testing
