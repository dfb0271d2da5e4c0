#!/bin/bash
# HTTP load figure: wrk against GET /status/<id> for 10 s while a job renders, and the same job's
# render time with and without that load, side by side (alternating), on the demo scene.
# Usage: bench/http-load.sh [REPS]   (needs wrk; writes bench/out/http-load.txt)
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
REPS=${1:-2}
PORT=${PORT:-4781}
FRAMES=${FRAMES:-1-12}
OUT=$TOP/bench/out
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/drender-http-load.XXXXXX)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
[ -s "$TOP/blend/demo.blend" ] || blender -b --factory-startup --python-exit-code 1 \
	--python "$TOP/blend/make_demo.py" -- "$TOP/blend/demo.blend" >/dev/null

mpirun --oversubscribe -np 3 "$TOP/drender" --serve --listen "127.0.0.1:$PORT" -q \
	--scene "$TOP/blend/demo.blend" --blend-root "$TOP/blend" --output-root "$WORK/out" \
	--rate-limit 0 >"$WORK/serve.log" 2>&1 &
SERVER=$!
cleanup() { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 0.1; done

field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

# run MODE REP: submit the job, optionally load it with wrk, wait; prints "elapsed wrk-summary".
run() {
	local mode=$1 rep=$2 id st
	id=$(curl -s -X POST -H 'Content-Type: application/json' "http://127.0.0.1:$PORT/render" \
		-d "{\"frames\":\"$FRAMES\",\"output\":\"$mode-$rep\"}" | field 'd["jobId"]')
	if [ "$mode" = loaded ]; then
		wrk -t2 -c16 -d10s --latency "http://127.0.0.1:$PORT/status/$id" >"$WORK/wrk-$rep.txt" 2>&1
	fi
	while :; do
		st=$(curl -s "http://127.0.0.1:$PORT/status/$id")
		case "$(field 'd["state"]' <<<"$st")" in done | failed | cancelled) break ;; esac
		sleep 0.5
	done
	echo "$(field 'round(d["elapsedSeconds"], 2)' <<<"$st") $(field 'd["frames"]["done"]' <<<"$st")"
}

{
	echo "drender HTTP load, $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "job: demo scene frames $FRAMES on mpirun -np 3 (2 render nodes); load: wrk -t2 -c16 -d10s GET /status/<id>"
	printf '%-4s %-8s %10s %7s %12s %10s %12s\n' rep mode "render s" frames "requests/s" errors "p99 latency"
	for rep in $(seq 1 "$REPS"); do
		for mode in quiet loaded; do
			read -r el n <<<"$(run $mode "$rep")"
			rps=- errs=- p99=-
			if [ $mode = loaded ]; then
				rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk-$rep.txt")
				errs=$(awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}' "$WORK/wrk-$rep.txt")
				p99=$(awk '$1 == "99%" {print $2}' "$WORK/wrk-$rep.txt")
			fi
			printf '%-4s %-8s %10s %7s %12s %10s %12s\n' "$rep" $mode "$el" "$n" "$rps" "$errs" "$p99"
		done
	done
} | tee "$OUT/http-load.txt"
