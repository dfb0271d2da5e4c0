#!/bin/bash
# End-to-end: one service per job database, even when jobs.lock is deleted. The lock is held on
# jobs.db itself, so a second `drender --serve` on the same output root is refused (exit 2, naming
# the holder when jobs.lock still says it) whatever happened to jobs.lock; once the first service
# is gone, a new one starts (nothing to clean up after a crash).
. "$(dirname "$0")/lib.sh"
command -v curl >/dev/null || skip_all "curl is not installed"
cd "$WORK" || exit 1
mkdir -p blends out
fake_scene blends/shot.blend
export DRENDER_BLENDER=$FAKE FAKE_BLENDER_COST=0.05
unset DRENDER_TOKEN

PORT=$(free_port)
URL=http://127.0.0.1:$PORT
# shellcheck disable=SC2034 # read by svc_start (lib.sh)
SVC_ARGS=(--scene "$WORK/blends/shot.blend" --blend-root "$WORK/blends" --output-root "$WORK/out")

svc_start 2
ok $? "the first service starts"
# second PORT: a second service on the same output root
second() {
	timeout 30 "${MPIRUN[@]}" -np 2 "$DRENDER" --serve --listen "127.0.0.1:$(free_port)" \
		"${SVC_ARGS[@]}" >"$1.out" 2>"$1.err"
}
second b
is $? 2 "a second service on the same output root: exit 2"
grep -q "is in use by another drender (pid $(rank_pid 0)" b.err
ok $? "naming the holder ($(head -n 1 b.err))"

rm -f out/jobs.lock
second c
is $? 2 "jobs.lock deleted: a second service is still refused (exit 2)"
grep -q "jobs.db is in use by another drender" c.err
ok $? "with the reason ($(head -n 1 c.err))"
http GET /health
is "$CODE" 200 "the first service still answers"

kill -9 "$(rank_pid 0)"
svc_stop
for p in $(leftover_pids); do kill -9 "$p" 2>/dev/null; done
svc_start 2
ok $? "after kill -9 of the holder, a new service starts with nothing cleaned up"
svc_stop
is "$(leftovers)" 0 "nothing left running"
done_testing
