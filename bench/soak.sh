#!/bin/bash
# Soak run (issue 10): `drender --serve` with the fake Blender for DURATION seconds under wrk
# (GET /jobs?limit=50), a stream of valid and hostile submissions and cancels, and a /health
# prober; every 10 s rank 0's RSS and CPU and the /health latencies of the window are written to
# bench/out/soak.dat. At the end: every accepted job accounted for, memory flat after eviction
# (last third against the middle third), /health p99 < 50 ms; a table and bench/soak.png.
# Loopback only; stops by itself; everything it starts is stopped by the trap.
# Usage: bench/soak.sh [DURATION_S]   (default 600; needs wrk, curl, python3, gnuplot)
# Knobs: FAKE_BLENDER_COST (0.02), KEEP_JOBS (200), WRK_CONN (8), SOAK_KEEP=1 keeps the scratch.
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
DUR=${1:-600}
KEEP_JOBS=${KEEP_JOBS:-200}
WRK_CONN=${WRK_CONN:-8}
MAX_FRAMES=1000
OUT=$TOP/bench/out
mkdir -p "$OUT"
DAT=$OUT/soak.dat
WORK=$(mktemp -d /tmp/drender-soak.XXXXXX)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
	OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo \
	OMPI_MCA_btl_base_warn_component_unused=0
export DRENDER_BLENDER=$TOP/tests/fixtures/fake-blender FAKE_BLENDER_COST=${FAKE_BLENDER_COST:-0.02}
unset DRENDER_TOKEN
for c in wrk curl python3 gnuplot mpirun; do
	command -v $c >/dev/null || { echo "soak: $c is not installed" >&2; exit 1; }
done
[ -x "$TOP/drender" ] || { echo "soak: build ./drender first (make)" >&2; exit 1; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT
mkdir -p "$WORK/blends" "$WORK/out" "$WORK/outside"
printf 'BLENDER-v304 fake scene for the soak\n' >"$WORK/blends/shot.blend"
printf 'BLENDER-v304 fake scene outside the root\n' >"$WORK/outside/secret.blend"
DB=$WORK/out/jobs.db

SERVER='' BG=()
cleanup() {
	local p
	for p in "${BG[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${BG[@]}"; do wait "$p" 2>/dev/null; done
	if [ -n "$SERVER" ]; then
		kill -TERM "$SERVER" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$SERVER" 2>/dev/null || break; sleep 0.2; done
		kill -KILL "$SERVER" 2>/dev/null
		wait "$SERVER" 2>/dev/null
	fi
	if [ "${SOAK_KEEP:-0}" = 1 ]; then echo "soak: scratch kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mpirun --oversubscribe --enable-recovery -np 3 "$TOP/drender" --serve --listen "127.0.0.1:$PORT" \
	--scene "$WORK/blends/shot.blend" --blend-root "$WORK/blends" --output-root "$WORK/out" \
	--keep-jobs "$KEEP_JOBS" --rate-limit 0 --max-frames $MAX_FRAMES \
	>"$WORK/serve.log" 2>&1 &
SERVER=$!
up=0
for _ in $(seq 150); do
	curl -sf -o /dev/null "$URL/health" && { up=1; break; }
	kill -0 "$SERVER" 2>/dev/null || break
	sleep 0.2
done
[ $up = 1 ] || { echo "soak: the service did not start" >&2; tail "$WORK/serve.log" >&2; exit 1; }

# Rank 0: the drender under mpirun whose environment says rank 0.
descendants() {
	local c
	for c in $(pgrep -P "$1"); do echo "$c"; descendants "$c"; done
}
R0=
for p in $(descendants "$SERVER"); do
	[ "$(cat /proc/"$p"/comm 2>/dev/null)" = drender ] || continue
	tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=0' && R0=$p
done
[ -n "$R0" ] || { echo "soak: cannot find rank 0's process" >&2; exit 1; }
TCK=$(getconf CLK_TCK)

START=$(date +%s.%N)
END_AT=$(python3 -c "print($START + $DUR)")
before_end() { python3 -c "import sys,time; sys.exit(0 if time.time() < $END_AT else 1)"; }

# Hostile bodies.
python3 -c 'print("{\"from\":1,\"to\":2,\"x\":\"" + "a" * 1000000 + "\"}")' >"$WORK/huge.json"
printf '{"from":1,"to":2,"output":"\xff\xfe"}' >"$WORK/badutf8.json"

# The submitter: ~4 requests a second until the end; one line per request in submit.log:
#   valid CODE ID NFRAMES | hostile KIND WANT CODE | cancel ID CODE
submitter() {
	local i=0 r code id n a kind want body
	: >"$WORK/accepted"
	while [ "$(date +%s)" -lt "${END_AT%.*}" ]; do
		i=$((i + 1))
		r=$((RANDOM % 100))
		if [ $r -lt 65 ]; then
			n=$((RANDOM % 20 + 1)) a=$((RANDOM % 500 + 1))
			code=$(curl -s -o "$WORK/sbody" -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d "{\"from\":$a,\"to\":$((a + n - 1))}" "$URL/render")
			id=-
			[ "$code" = 202 ] && id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobId"])' "$WORK/sbody")
			echo "valid $code $id $n"
			[ "$code" = 202 ] && echo "$id $n" >>"$WORK/accepted"
		elif [ $r -lt 90 ]; then
			case $((i % 6)) in
			0) kind=oversized want=413 body=(-d "{\"from\":1,\"to\":$((MAX_FRAMES * 5))}") ;;
			1) kind=bad-utf8 want=400 body=(--data-binary "@$WORK/badutf8.json") ;;
			2) kind=escape-blend want=403 body=(-d '{"from":1,"to":2,"blend":"../outside/secret.blend"}') ;;
			3) kind=escape-output want=403 body=(-d '{"from":1,"to":2,"output":"../x"}') ;;
			4) kind=huge-body want=413 body=(--data-binary "@$WORK/huge.json") ;;
			5) kind=malformed want=400 body=(-d '{"from":1,') ;;
			esac
			code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' "${body[@]}" "$URL/render")
			echo "hostile $kind $want $code"
		else
			# Half the cancels hit a job just submitted (still queued or running), half a
			# random recent one (mostly finished by then).
			if [ $((r % 2)) = 0 ]; then
				code=$(curl -s -o "$WORK/sbody" -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"from":1,"to":20}' "$URL/render")
				id=-
				[ "$code" = 202 ] && id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["jobId"])' "$WORK/sbody")
				echo "valid $code $id 20"
				[ "$code" = 202 ] && echo "$id 20" >>"$WORK/accepted"
			fi
			id=$(tail -n 4 "$WORK/accepted" | shuf -n 1 | cut -d' ' -f1)
			[ $((r % 2)) = 0 ] && id=$(tail -n 1 "$WORK/accepted" | cut -d' ' -f1)
			[ -n "$id" ] || { sleep 0.2; continue; }
			code=$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "$URL/jobs/$id")
			echo "cancel $id $code"
		fi
		sleep 0.2
	done
}
submitter >"$WORK/submit.log" 2>"$WORK/submit.err" &
BG+=($!)

# The /health prober: "UNIXTIME SECONDS CODE" per request, ~10 a second.
prober() {
	while [ "$(date +%s)" -lt "${END_AT%.*}" ]; do
		echo "$(date +%s.%N) $(curl -s -o /dev/null -w '%{time_total} %{http_code}' --max-time 5 "$URL/health")"
		sleep 0.05
	done
}
prober >"$WORK/health.log" &
BG+=($!)

wrk -t1 -c"$WRK_CONN" -d"${DUR}s" --latency "$URL/jobs?limit=50" >"$WORK/wrk.txt" 2>&1 &
BG+=($!)

# snapshot: every finished job in the table ("ID STATE" into finals), and the table's size.
snapshot() {
	python3 - "$DB" "$WORK/finals" <<'EOF'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True, timeout=10)
rows = db.execute("SELECT id, state FROM jobs WHERE ended IS NOT NULL").fetchall()
with open(sys.argv[2], "a") as f:
    f.writelines(f"{i} {s}\n" for i, s in rows)
print(db.execute("SELECT count(*) FROM jobs").fetchone()[0],
      db.execute("SELECT count(*) FROM jobs WHERE ended IS NULL").fetchone()[0])
EOF
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$R0/stat"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$R0/status"; }

echo "# t_s rss_MB cpu_pct health_n health_p50_ms health_p99_ms health_max_ms table_rows unfinished accepted" >"$DAT"
prev_t=$START prev_c=$(cpu_ticks)
echo "soak: $DUR s on $URL (rank 0 pid $R0, keep-jobs $KEEP_JOBS, wrk -c$WRK_CONN on /jobs?limit=50)" >&2
while before_end; do
	sleep 10
	kill -0 "$R0" 2>/dev/null || { echo "soak: rank 0 died" >&2; break; }
	now=$(date +%s.%N) c=$(cpu_ticks) rss=$(rss_kb)
	read -r rows unfinished <<<"$(snapshot)"
	acc=$(wc -l <"$WORK/accepted")
	python3 - "$WORK/health.log" "$START" "$prev_t" "$now" "$prev_c" "$c" "$TCK" "$rss" "$rows" "$unfinished" "$acc" <<'EOF' \
		| tee -a "$DAT" >&2
import sys
f, s, a, b, c0, c1, tck, rss, rows, unf, acc = sys.argv[1:]
s, a, b, c0, c1, tck = map(float, (s, a, b, c0, c1, tck))
v = sorted(float(x[1]) * 1000 for x in (l.split() for l in open(f)) if len(x) == 3 and a <= float(x[0]) < b)
n = len(v)
q = lambda p: v[min(n - 1, int(p * n))] if n else 0
print(f"{b - s:.0f} {int(rss) / 1024:.1f} {(c1 - c0) / tck / (b - a) * 100:.1f} {n} {q(0.5):.2f} {q(0.99):.2f} {v[-1] if n else 0:.2f} {rows} {unf} {acc}")
EOF
	prev_t=$now prev_c=$c
done

# Stop the load, let the queue drain (at most 120 s), then account for every accepted job.
for p in "${BG[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
BG=()
for _ in $(seq 120); do
	read -r rows unfinished <<<"$(snapshot)"
	[ "$unfinished" = 0 ] && break
	sleep 1
done
snapshot >/dev/null
sort -u "$WORK/finals" -o "$WORK/finals"
lost=0 pending=0 inlist=0 evicted=0
declare -A fin=()
while read -r id st; do fin[$id]=$st; done <"$WORK/finals"
while read -r id n; do
	code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/status/$id")
	case $code in
	200) inlist=$((inlist + 1)) ;;
	202) pending=$((pending + 1)) ;;
	404) if [ -n "${fin[$id]:-}" ]; then evicted=$((evicted + 1)); else
		lost=$((lost + 1)); echo "LOST: $id ($n frames)" >&2; fi ;;
	*) lost=$((lost + 1)); echo "LOST? $id answers $code" >&2 ;;
	esac
done <"$WORK/accepted"
accepted=$(wc -l <"$WORK/accepted")
ndone=0 nfailed=0 ncancelled=0
for id in $(cut -d' ' -f1 "$WORK/accepted"); do
	case ${fin[$id]:-} in done) ndone=$((ndone + 1)) ;; failed) nfailed=$((nfailed + 1)) ;; cancelled) ncancelled=$((ncancelled + 1)) ;; esac
done
rss_end=$(rss_kb)

{
	echo "drender soak, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs (shared), $DUR s, fake Blender ${FAKE_BLENDER_COST} s/frame,"
	echo "mpirun -np 3 (2 render nodes), --keep-jobs $KEEP_JOBS --rate-limit 0 --max-frames $MAX_FRAMES; wrk -t1 -c$WRK_CONN GET /jobs?limit=50"
	echo
	echo "memory and CPU of rank 0 (10 s samples; thirds of the run):"
	awk 'NR > 1 { t[++n] = $1; r[n] = $2; c[n] = $3 }
	END {
		a = int(n / 3); b = int(2 * n / 3)
		for (i = 1; i <= n; i++) { k = i <= a ? 1 : i <= b ? 2 : 3; s[k] += r[i]; m[k] = r[i] > m[k] ? r[i] : m[k]; cs[k] += c[i]; cnt[k]++ }
		printf "  %-8s %8s %8s %8s\n", "third", "RSS avg", "RSS max", "CPU avg"
		split("first middle last", nm)
		for (k = 1; k <= 3; k++) printf "  %-8s %6.1f MB %5.1f MB %6.1f %%\n", nm[k], s[k] / cnt[k], m[k], cs[k] / cnt[k]
		g = (s[3] / cnt[3]) / (s[2] / cnt[2]) - 1
		printf "  last third against middle: %+.1f %% -> %s\n", 100 * g, g < 0.10 ? "flat (PASS)" : "GROWING (FAIL)"
	}' "$DAT"
	echo "  RSS at the end, after the drain: $((rss_end / 1024)) MB"
	echo
	python3 - "$WORK/health.log" "$START" "$END_AT" <<'EOF'
import sys
s, e = float(sys.argv[2]), float(sys.argv[3])
r = [x for x in (l.split() for l in open(sys.argv[1])) if len(x) == 3 and s <= float(x[0]) < e]
bad = sum(x[2] != "200" for x in r)
v = sorted(float(x[1]) * 1000 for x in r)
n = len(v)
q = lambda p: v[min(n - 1, int(p * n))]
ok = q(0.99) < 50 and not bad
print(f"/health: {n} requests, {bad} not 200; p50 {q(0.5):.2f} ms, p90 {q(0.9):.2f} ms, "
      f"p99 {q(0.99):.2f} ms, max {v[-1]:.2f} ms -> {'PASS' if ok else 'FAIL'}")
EOF
	awk 'NR > 1 && $6 > m { m = $6; t = $1 } END { printf "  worst 10 s window p99: %.2f ms (at %d s)\n", m, t }' "$DAT"
	echo
	echo "jobs: accepted (202) $accepted, done $ndone, failed $nfailed, cancelled $ncancelled;"
	echo "  at the end: in the table $inlist finished + $pending unfinished, evicted after finishing $evicted, lost $lost -> $([ $lost = 0 ] && echo PASS || echo FAIL)"
	awk '$1 == "valid" && $2 != 202 { r[$2]++ } END { for (c in r) printf "  valid submissions refused: %d x %s\n", r[c], c }' "$WORK/submit.log"
	awk '$1 == "cancel" { c[$3]++; n++ } END { printf "cancels (DELETE /jobs/<id>): %d:", n; for (k in c) printf " %s x %d", k, c[k]; print "" }' "$WORK/submit.log"
	echo "hostile requests:"
	awk '$1 == "hostile" { n[$2]++; want[$2] = $3; got[$2 " " $4]++ }
	END { for (k in n) { printf "  %-14s want %s:", k, want[k]; for (g in got) { split(g, x, " "); if (x[1] == k) printf " %s x %d", x[2], got[g] } print "" } }' "$WORK/submit.log" | sort
	awk '$1 == "hostile" && $3 != $4 { b++ } END { printf "  unexpected answers: %d -> %s\n", b, b ? "FAIL" : "PASS" }' "$WORK/submit.log"
	echo "wrk: $(awk '/requests in/ {n = $1} /Requests\/sec/ {r = $2} $1 == "99%" {p = $2} /Non-2xx/ {x = $NF} /Socket errors/ {se = $0}
		END {printf "%s requests, %s/s, p99 %s, non-2xx %d%s", n, r, p, x, se ? "," se : ""}' "$WORK/wrk.txt")"
	echo "evictions logged by the service: $(grep -o 'evicted [0-9]*' "$WORK/serve.log" | awk '{n += $2} END {print n + 0}') jobs"
} | tee "$OUT/soak.txt"
gnuplot -e "datafile='$DAT'; outfile='$TOP/bench/soak.png'" "$TOP/bench/soak.gp" || echo "soak: gnuplot failed" >&2
echo "soak: data $DAT, table $OUT/soak.txt, plot bench/soak.png" >&2
