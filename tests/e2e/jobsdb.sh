#!/bin/bash
# End-to-end: the job database under a full disk and a crash. `drender --serve` with its output
# root on a small tmpfs: a job that cannot be recorded is answered 503 and leaves no trace, every
# accepted job survives; after kill -9 of rank 0 the service starts again and resumes.
. "$(dirname "$0")/lib.sh"
[ "$(id -u)" -eq 0 ] || skip_all "needs root to mount a tmpfs"
# The service (svc_setup, svc_start: lib.sh) on $PORT; `svc_start 2` has one render node.
svc_setup
mount -t tmpfs -o size=2m drender-e2e "$WORK/out" 2>/dev/null || skip_all "cannot mount a tmpfs"
trap 'umount -l "$WORK/out" 2>/dev/null; cleanup_work' EXIT
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_LOG=$WORK/blender.log FAKE_BLENDER_COST=0.05
list_ids() { curl -s "$URL/jobs?limit=1000" | python3 -c 'import json,sys; print(" ".join(sorted(j["jobId"] for j in json.load(sys.stdin)["jobs"])))'; }

# The Blender keeps the cost it started with: frames 4-12 take 1 s each, so that the job killed
# below is still mid-way when rank 0's kill has taken the render node down too, however loaded
# the machine (frames 1-3, the other jobs' frames, stay fast).
FAKE_BLENDER_COSTS=$(seq -s, -f '%g:1' 4 12) svc_start 2
ok $? "the service starts on a 2 MB tmpfs output root"
http POST /render '{"from":1,"to":3,"output":"a"}'
is "$CODE" 202 "a job is accepted"
A=$(field 'd["jobId"]')
wait_state "$A" done 30
ok $? "and rendered"

# Fill the disk: the next job cannot be recorded.
dd if=/dev/zero of=out/filler bs=64k 2>/dev/null
http POST /render '{"from":1,"to":3,"output":"b"}'
is "$CODE" 503 "a job that cannot be recorded on a full disk -> 503"
field 'd["error"]' | grep -q "full"
ok $? "the reason is given ($(field 'd["error"]'))"
is "$(list_ids)" "$A" "the refused job is not listed; the accepted one is"
http GET "/status/$A"
is "$CODE:$(field 'd["state"]')" 200:done "the finished job still answers while the disk is full"

# Room again: jobs are accepted; kill -9 rank 0 in the middle of one.
rm -f out/filler
http POST /render '{"from":1,"to":12,"output":"c"}'
is "$CODE" 202 "with room again, jobs are accepted"
C=$(field 'd["jobId"]')
wait_for 20 has_files 2 out/c
holder=$(sed -n 's/^pid \([0-9]*\) .*/\1/p' out/jobs.lock)
[ -n "$holder" ] && kill -0 "$holder" 2>/dev/null
ok $? "jobs.lock names the service's process ($holder)"
kill -9 "$holder"
for _ in $(seq 100); do kill -0 "$SERVE_PID" 2>/dev/null || break; sleep 0.1; done
kill -9 "$SERVE_PID" 2>/dev/null
wait "$SERVE_PID" 2>/dev/null
for p in $(leftover_pids); do kill -9 "$p" 2>/dev/null; done
before=$(find out/c -name '*.png' | wc -l)
[ "$before" -gt 0 ] && [ "$before" -lt 12 ]
ok $? "killed mid-job ($before of 12 on disk)"
python3 -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' out/jobs.db >integrity.txt 2>&1
is "$(cat integrity.txt)" ok "the database is intact after kill -9"

FAKE_BLENDER_COST=0.05
svc_start 2
ok $? "the service starts again after kill -9"
wait_state "$C" done 30
ok $? "the interrupted job resumes and finishes"
is "$(valid_pngs out/c)" 12 "12 frames on disk"
is "$(list_ids)" "$(printf '%s\n' "$A" "$C" | sort | tr '\n' ' ' | sed 's/ $//')" \
	"both accepted jobs are listed, and only they"
svc_stop
is "$(leftovers)" 0 "nothing left running"
done_testing
