#!/bin/bash
# End-to-end (TAP): the image and the Compose cluster under a real engine (podman + Debian's
# docker-compose 1.29 through podman's Docker API), with the repository's files unchanged.
#
# 1. the image (scripts/container-image.sh: built, or reused when its inputs are unchanged):
#    no compiler, non-root; a batch render of the demo's frames 1-4 into a bind mount, the
#    files owned by uid 1000 (README.md, "Docker Compose");
# 2. docker-compose.yml: up, the head's health check turns healthy, the tutorial's
#    POST /render {"from":1,"to":6} and GET /status/<id> to 200, frames from the three nodes
#    in ./output (which only the head mounts: the frames come home over MPI), /metrics
#    through the port published on 127.0.0.1 only;
# 3. a node container killed mid-job: the API answers all along, the job finishes on the other
#    two nodes and the head does not restart (mpirun --enable-recovery); a head restarted while
#    the node is still missing starts with the nodes it has; then down -v leaves no container,
#    network or volume;
# 4. the same cluster with DRENDER_TOKEN: 401 without it, 202 with it.
#
# Compose runs on a scratch project directory (./blend, ./output) with -f docker-compose.yml,
# under its own project name; podman's API service listens on a private socket. Everything is
# removed on exit, failure or not. Skipped (with the reason) where podman cannot run a
# container. podman without systemd does not schedule health checks: the test runs the
# container's own check (podman healthcheck run) until it reports healthy.
#
# Environment: DRENDER_CI_CACHE (see scripts/container-image.sh), DEPLOY_LOGDIR (keep logs).
set -u

# shellcheck source-path=SCRIPTDIR source=deploy-lib.bash
. "$(dirname "$0")/deploy-lib.bash"
PLAN=21
IMAGE=localhost/drender:latest
CACHE=${DRENDER_CI_CACHE:-/var/cache/drender-ci}
export DRENDER_CI_CACHE=$CACHE
export CONTAINERS_CONF=${CONTAINERS_CONF:-$CACHE/containers.conf}

skip_if_fast_only
need_root "podman runs the containers as root here (rootful podman)"
need_tools -h "(scripts/install-deps.sh)" podman runc debootstrap docker-compose curl python3
t_start=$SECONDS
# docker-compose.yml publishes port 4000 on this host: one run of this test at a time per machine
# (two make checks side by side wait for each other here; nothing else in the suite uses 4000).
mkdir -p "$CACHE"
exec 8>"$CACHE/.container-test.lock"
flock -w 1200 8 || skip_all "waited 1200 s for $CACHE/.container-test.lock (another container test)"

W=$(new_tmp -d container)
chmod 755 "$W"
P=drci$$ # compose project name
SVC_PID=""
PROJECTS=""
cleanup() {
	local p
	for p in $PROJECTS; do
		timeout 90 env DOCKER_HOST="unix://$W/podman.sock" docker-compose -p "$p" \
			-f "$TOP/docker-compose.yml" --project-directory "$W/proj" down -v -t 5 >/dev/null 2>&1
		# Whatever compose could not remove (service gone, timeout): by its labels.
		podman ps -aq --filter "label=com.docker.compose.project=$p" | xargs -r podman rm -f -t 2 >/dev/null 2>&1
		podman network ls -q --filter "label=com.docker.compose.project=$p" | xargs -r podman network rm -f >/dev/null 2>&1
		podman volume ls -q --filter "label=com.docker.compose.project=$p" | xargs -r podman volume rm -f >/dev/null 2>&1
	done
	podman rm -f -t 2 "${P}_batch" >/dev/null 2>&1
	if [ -n "$SVC_PID" ]; then
		kill "$SVC_PID" 2>/dev/null
		wait "$SVC_PID" 2>/dev/null
	fi
	rm -rf "$W"
}
on_exit cleanup

# --- can podman run a container here? -------------------------------------------------------
if ! scripts_out=$("$TOP/scripts/container-image.sh" --base-only 2>&1); then
	skip_all "no base image: $(echo "$scripts_out" | tail -n 1)"
fi
if ! probe=$(timeout 60 podman run --rm --network none localhost/debian:bookworm-slim true 2>&1); then
	skip_all "podman cannot run a container here: $(echo "$probe" | tail -n 1)"
fi

echo "1..$PLAN"

# --- 1. the image ---------------------------------------------------------------------------
t0=$SECONDS
built=$("$TOP/scripts/container-image.sh" 2>"$W/build.err")
rc=$?
check "image $IMAGE: $built (${built:+$((SECONDS - t0))s})" -- [ "$rc" -eq 0 ] ||
	{ diag <"$W/build.err"; fail_rest "no image"; }
in_image() { podman run --rm --network none --entrypoint /bin/sh "$IMAGE" -c "$1"; }
# shellcheck disable=SC2016 # $c expands in the container
cc=$(in_image 'for c in cc gcc clang c++ g++ make ld as; do command -v $c; done' 2>&1)
check "runtime stage has no compiler or linker (${cc:-none found})" -- [ -z "$cc" ]
who=$(in_image 'id -un; id -u' 2>&1 | tr '\n' ' ')
check "runs as the non-root user render, uid 1000 ($who)" -- [ "$who" = "render 1000 " ]

mkdir -p "$W/batch"
chown 1000 "$W/batch"
t0=$SECONDS
timeout 300 podman run --name "${P}_batch" --rm -e DRENDER_ROLE=batch -v "$W/batch:/output" \
	"$IMAGE" drender /opt/drender/blend/demo.blend 1 4 -o '/output/demo_####' \
	--report /output/report.json >"$W/batch.log" 2>&1
rc=$?
got=$(cd "$W/batch" && find . -name 'demo_*.png' -size +0 -printf '%f:%U ' | tr ' ' '\n' | sort | tr '\n' ' ')
check "podman run IMAGE drender demo.blend 1 4 -> exit $rc in $((SECONDS - t0))s, frames owned by uid 1000 in the bind mount ($got)" -- \
	[ "$rc" -eq 0 -a "$got" = "demo_0001.png:1000 demo_0002.png:1000 demo_0003.png:1000 demo_0004.png:1000 " ] ||
	tail -n 20 "$W/batch.log" | diag

# --- 2. the Compose cluster -----------------------------------------------------------------
podman system service --time=0 "unix://$W/podman.sock" >"$W/service.log" 2>&1 &
SVC_PID=$!
deadline=$((SECONDS + 30))
until curl -s -m 2 --unix-socket "$W/podman.sock" http://d/_ping | grep -q OK; do
	[ "$SECONDS" -ge "$deadline" ] && { diag <"$W/service.log"; fail_rest "podman system service did not answer"; }
	sleep 0.2
done
mkdir -p "$W/proj/blend" "$W/proj/output"
chown 1000 "$W/proj/output"
compose() { # compose PROJECT ARGS...: docker-compose on the repository's file, the scratch project
	local p=$1
	shift
	DOCKER_HOST="unix://$W/podman.sock" docker-compose -p "$p" -f "$TOP/docker-compose.yml" \
		--project-directory "$W/proj" "$@"
}
api() { curl -s -m 5 "$@"; }
code() { curl -s -m 5 -o /dev/null -w '%{http_code}' "$@"; }
healthy_within() { # healthy_within PROJECT SECONDS: run the head's health check until healthy
	local c=${1}_head_1 deadline=$((SECONDS + $2)) st
	while :; do
		podman healthcheck run "$c" >/dev/null 2>&1
		st=$(podman inspect --format '{{.State.Health.Status}}' "$c" 2>/dev/null)
		[ "$st" = healthy ] && return 0
		[ "$SECONDS" -ge "$deadline" ] && return 1
		sleep 1
	done
}
job_state() { # job_state ID: "state done hosts" from GET /status/<id>, and its HTTP status
	api -w '\n%{http_code}' "http://127.0.0.1:4000/status/$1" | python3 -c '
import json, sys
lines = sys.stdin.read().rsplit("\n", 1)
try:
    s = json.loads(lines[0])
except Exception:
    print("? ? - " + lines[-1]); sys.exit(0)
hosts = sorted(n["host"] for n in s.get("nodes", []) if n.get("framesDone"))
print(s.get("state"), s.get("frames", {}).get("done"), ",".join(hosts) or "-", lines[-1])'
}
wait_job() { # wait_job ID SECONDS: poll until 200 (finished); prints the last job_state
	local deadline=$((SECONDS + $2)) st
	while :; do
		st=$(job_state "$1")
		case $st in *" 200") break ;; esac
		[ "$SECONDS" -ge "$deadline" ] && break
		sleep 0.5
	done
	echo "$st"
}
if ss -ltn | awk '{ print $4 }' | grep -q ':4000$'; then
	fail_rest "port 4000 is taken on this host; docker-compose.yml publishes 4000"
fi

PROJECTS=$P
t0=$SECONDS
compose "$P" up -d >"$W/up.log" 2>&1
rc=$?
check "docker-compose up -d: head + 3 nodes from the repository's docker-compose.yml ($((SECONDS - t0))s)" -- [ "$rc" -eq 0 ] ||
	{ diag <"$W/up.log"; fail_rest "compose up failed"; }
healthy_within "$P" 180
rc=$?
up_healthy=$((SECONDS - t0))
check "head's health check healthy ${up_healthy}s after up" -- [ "$rc" -eq 0 ] ||
	podman logs "${P}_head_1" 2>&1 | tail -n 20 | diag

t0=$SECONDS
reply=$(api -i -X POST -H 'Content-Type: application/json' http://localhost:4000/render -d '{"from":1,"to":6}')
job=$(echo "$reply" | sed -n 's/.*"jobId" *: *"\([^"]*\)".*/\1/p')
check "tutorial: POST /render {\"from\":1,\"to\":6} -> 202 with a jobId (${job:-none})" -- \
	eval "echo '$reply' | head -n 1 | grep -q ' 202' && [ -n '$job' ]" || echo "$reply" | diag
st=$(wait_job "$job" 300)
tut=$((SECONDS - t0))
check "GET /status/$job -> 200 in ${tut}s: done, 6 frames, from node1,node2,node3 ($st)" -- \
	[ "$st" = "done 6 node1,node2,node3 200" ]
frames=$(find "$W/proj/output/$job" -name '*.png' -size +0 2>/dev/null | wc -l)
check "6 frames in the host's ./output/$job (got $frames)" -- [ "$frames" -eq 6 ]
# Only the head mounts ./output: the nodes' frames came home over MPI.
homed=$(podman logs "${P}_head_1" 2>&1 | grep -c "3 nodes cannot see the output directory")
inside=$(podman exec "${P}_node1_1" find /output -name '*.png' 2>/dev/null | wc -l)
check "the nodes mount no ./output: their frames came home over MPI (head said so: $homed; left on node1: $inside)" -- \
	[ "$homed" -ge 1 -a "$inside" -eq 0 ]
metrics=$(code http://127.0.0.1:4000/metrics)
hostip=$(hostname -I | awk '{ print $1 }')
outside=$(code "http://$hostip:4000/metrics")
check "/metrics through 127.0.0.1:4000 -> $metrics; through the host's $hostip:4000 -> $outside (not published)" -- \
	[ "$metrics" = 200 -a "$outside" = 000 ]

# --- 3. a node container killed mid-job -------------------------------------------------------
reply=$(api -X POST -H 'Content-Type: application/json' http://localhost:4000/render -d '{"from":1,"to":20}')
job2=$(echo "$reply" | sed -n 's/.*"jobId" *: *"\([^"]*\)".*/\1/p')
deadline=$((SECONDS + 120))
until [ "$(job_state "$job2" | awk '{ print $2 }')" -ge 1 ] 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; do
	sleep 0.5
done
before=$(job_state "$job2")
check "a 20-frame job running (${job2:-no job}: $before)" -- eval "[ -n '$job2' ] && [ \"\$(echo '$before' | awk '{ print \$2 }')\" -ge 1 ]"
t0=$SECONDS
compose "$P" kill node3 >"$W/kill.log" 2>&1
# The head runs mpirun --enable-recovery: drender declares node3 lost, the API keeps answering
# and the job finishes on node1 and node2, without a restart.
worst=200
until [ "$(job_state "$job2" | awk '{ print $NF }')" = 200 ] || [ $((SECONDS - t0)) -ge 240 ]; do
	h=$(code http://127.0.0.1:4000/health)
	[ "$h" = 200 ] || worst=$h
	sleep 0.5
done
gap=$((SECONDS - t0))
check "kill node3 mid-job: /health answered 200 all along (worst: $worst)" -- [ "$worst" = 200 ]
st=$(job_state "$job2")
frames=$(find "$W/proj/output/$job2" -maxdepth 1 -name '*.png' -size +0 2>/dev/null | wc -l)
check "job $job2 finishes on node1 and node2 ${gap}s after the kill: 20 frames in ./output ($st)" -- \
	eval "case '$st' in 'done '*' 200') [ $frames -eq 20 ] ;; *) false ;; esac"
restarts=$(podman inspect --format '{{.RestartCount}}' "${P}_head_1" 2>/dev/null)
check "the MPI world outlived node3: the head did not restart (restarts: ${restarts:-?})" -- \
	[ "$restarts" = 0 ]
# A head restarted while node3 is still missing starts with the nodes it has.
compose "$P" restart head >"$W/restart.log" 2>&1
deadline=$((SECONDS + 150))
until { podman logs "${P}_head_1" 2>&1 | grep -q 'starting without node3'; } &&
	[ "$(code http://127.0.0.1:4000/health)" = 200 ] || [ "$SECONDS" -ge "$deadline" ]; do
	sleep 0.5
done
hf=$(podman exec "${P}_head_1" grep -v '^#' /home/render/hostfile 2>/dev/null | awk '{ print $1 }' | tr '\n' ' ')
check "a head restarted without node3 starts with the nodes it has: hostfile '$hf', node3 logged missing" -- \
	eval "[ '$hf' = 'head node1 node2 ' ] && podman logs ${P}_head_1 2>&1 | grep -q 'starting without node3'"
podman logs "${P}_head_1" >"$W/head.log" 2>&1
keep_logs "$W/head.log"

t0=$SECONDS
compose "$P" down -v -t 30 >"$W/down.log" 2>&1
rc=$?
left="$(podman ps -aq --filter "label=com.docker.compose.project=$P")"
left="$left$(podman network ls -q --filter "label=com.docker.compose.project=$P")"
left="$left$(podman volume ls -q --filter "label=com.docker.compose.project=$P")"
check "docker-compose down -v ($((SECONDS - t0))s): no container, network or volume of the project left (${left:-none})" -- \
	[ "$rc" -eq 0 -a -z "$left" ] || diag <"$W/down.log"

# --- 4. with DRENDER_TOKEN --------------------------------------------------------------------
PT=${P}t
PROJECTS="$P $PT"
t0=$SECONDS
DRENDER_TOKEN=ci-secret-ci-secret compose "$PT" up -d >"$W/up2.log" 2>&1
rc=$?
check "DRENDER_TOKEN=... docker-compose up -d ($((SECONDS - t0))s)" -- [ "$rc" -eq 0 ] ||
	{ diag <"$W/up2.log"; fail_rest "compose up with a token failed"; }
healthy_within "$PT" 180
rc=$?
check "head with a token healthy $((SECONDS - t0))s after up (/health needs no token)" -- [ "$rc" -eq 0 ] ||
	podman logs "${PT}_head_1" 2>&1 | tail -n 20 | diag
no=$(code -X POST -H 'Content-Type: application/json' http://127.0.0.1:4000/render -d '{"from":1,"to":2}')
bad=$(code -X POST -H 'Authorization: Bearer wrong' -H 'Content-Type: application/json' http://127.0.0.1:4000/render -d '{"from":1,"to":2}')
yes=$(code -X POST -H 'Authorization: Bearer ci-secret-ci-secret' -H 'Content-Type: application/json' http://127.0.0.1:4000/render -d '{"from":1,"to":2}')
check "POST /render without the token -> $no, a wrong one -> $bad, with it -> $yes" -- \
	[ "$no" = 401 -a "$bad" = 401 -a "$yes" = 202 ]
compose "$PT" down -v -t 30 >"$W/down2.log" 2>&1
rc=$?
left="$(podman ps -aq --filter "label=com.docker.compose.project=$PT")"
left="$left$(podman network ls -q --filter "label=com.docker.compose.project=$PT")"
left="$left$(podman volume ls -q --filter "label=com.docker.compose.project=$PT")"
check "docker-compose down -v: nothing of the token cluster left (${left:-none})" -- [ "$rc" -eq 0 -a -z "$left" ]

echo "# container.sh: $((SECONDS - t_start))s in all; up to healthy ${up_healthy}s, tutorial ${tut}s, job done on the survivors ${gap}s after the node kill"
[ "$T_N" -eq "$PLAN" ] || echo "# planned $PLAN tests, ran $T_N"
[ "$T_FAILED" -eq 0 ]
