#!/bin/bash
# End-to-end (TAP): the Compose cluster of docker-compose.yml, run without Docker.
#
# No Docker engine runs here, so each container is played by what it is made of: a network
# namespace with its own hostname (head, node1..node3, joined by a bridge, names resolved like
# Compose's DNS), the image's layout (/opt/drender/bin with docker/*.sh, drender and "blender"
# on the default PATH: the fake Blender), the non-root user "render" (a throwaway user that
# exists only in this test's private mount namespace) and the shared ssh-keys volume (one
# directory). Then the real entry point runs in every "container": render nodes make/reuse
# the keys and run sshd; the head waits for them, writes the hostfile and runs
# mpirun ... drender --serve over ssh. The tutorial request is sent the way another container
# (or Docker's port forwarding) reaches the head: to the head's network address, port 4000.
#
# Needs root, iproute2, unshare, setpriv, sshd (openssh-server), socat, curl, Open MPI.
# Everything stays inside namespaces this test makes; all is removed whatever happens.
set -u

# shellcheck source-path=SCRIPTDIR source=deploy-lib.bash
. "$(dirname "$0")/deploy-lib.bash"
D=$TOP/docker
PLAN=11
NODES="node1 node2 node3"

if [ "${DR_SIM_INNER:-}" != 1 ]; then
	skip_if_fast_only
	need_root "network and mount namespaces need root"
	need_tools ip unshare setpriv socat curl mpirun python3
	[ -x /usr/sbin/sshd ] || skip_all "openssh-server not installed (no sshd for the render nodes)"
	unshare -m --propagation private true 2>/dev/null || skip_all "cannot make a private mount namespace"
	# Everything below runs in a private mount namespace: its mounts vanish with it.
	DR_SIM_INNER=1 exec unshare -m --propagation private "$0" "$@"
fi

netns_init drs
S=/opt/sim
SETUP_LOG=""

cleanup() {
	netns_cleanup
	keep_logs "$S"/*.log # the containers' logs
	rm -f "$SETUP_LOG"
	# /opt, /usr/local/bin and /etc/passwd here are this namespace's own: nothing else to undo.
}
on_exit cleanup

# --- the image's file system ---------------------------------------------------------------
setup_fs() {
	mount -t tmpfs -o mode=755 drender-sim-opt /opt &&
		mount -t tmpfs -o mode=755 drender-sim-bin /usr/local/bin || return 1
	mkdir -p /opt/drender/bin /opt/drender/blend "$S/keys" "$S/blend" "$S/output" || return 1
	cp "$D"/*.sh "$TOP/scripts/drender-mpirun" /opt/drender/bin/ && chmod 755 /opt/drender/bin/* ||
		return 1
	printf 'BLENDER-v300 the image demo scene (fake)\n' >/opt/drender/blend/demo.blend
	ln -s "$DRENDER" /usr/local/bin/drender && ln -s "$FAKE" /usr/local/bin/blender || return 1
	# The render user, in this namespace only.
	local uid=4242
	while getent passwd "$uid" >/dev/null || getent group "$uid" >/dev/null; do uid=$((uid + 1)); done
	RUID=$uid
	cp /etc/passwd /etc/shadow /etc/group "$S/" || return 1
	echo "render:x:$uid:$uid::$S/home-head:/bin/bash" >>"$S/passwd"
	echo "render:!:20000:0:99999:7:::" >>"$S/shadow"
	echo "render:x:$uid:" >>"$S/group"
	mount --bind "$S/passwd" /etc/passwd && mount --bind "$S/shadow" /etc/shadow &&
		mount --bind "$S/group" /etc/group || return 1
	local h
	for h in head $NODES; do mkdir -p "$S/home-$h"; done
	chown "$uid:$uid" "$S"/home-* "$S/keys" "$S/output"
}

SETUP_LOG=$(new_tmp sim-setup)
if ! setup_fs >"$SETUP_LOG" 2>&1; then
	skip_all "cannot mount the image's file system in a private mount namespace: $(tail -n 1 "$SETUP_LOG")"
fi
# The Compose network: head, node1..node3 on one bridge, names resolved as Compose's DNS does.
# shellcheck disable=SC2086
if ! netns_cluster 10.78.0 "$S" head $NODES >"$S/setup-net.log" 2>&1; then
	skip_all "cannot create network namespaces, veth pairs or a bridge: $(tail -n 1 "$S/setup-net.log")"
fi

# in_container NAME ENV... COMMAND...: run as "render" in NAME's namespace, hostname NAME,
# with the environment Compose would give (env -i: nothing leaks from this test).
in_container() {
	local name=$1
	shift
	as_host "$name" setpriv --reuid "$RUID" --regid "$RUID" --clear-groups \
		env -i HOME="$S/home-$name" PATH=/opt/drender/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin \
		DRENDER_KEYS="$S/keys" DRENDER_SSH_PORT=2222 "$@"
}

echo "1..$PLAN"
need_drender

# --- docker compose up ----------------------------------------------------------------------
for h in $NODES; do
	in_container "$h" DRENDER_ROLE=node /opt/drender/bin/entrypoint.sh >"$S/$h.log" 2>&1 &
done
in_container head DRENDER_ROLE=head DRENDER_NODES="$NODES" DRENDER_WAIT_SECS=60 \
	DRENDER_BLEND_ROOT="$S/blend" DRENDER_OUTPUT_ROOT="$S/output" \
	/opt/drender/bin/entrypoint.sh >"$S/head.log" 2>&1 &
t0=$SECONDS

healthy() { # NAME ROLE: the image's health check passes in that container
	in_container "$1" DRENDER_ROLE="$2" /opt/drender/bin/healthcheck.sh >/dev/null 2>&1
}
until healthy head head || [ $((SECONDS - t0)) -ge 90 ]; do sleep 0.5; done
up=$((SECONDS - t0))
check "head healthy (GET /health through the image's health check) ${up}s after start" -- healthy head head ||
	diag <"$S/head.log"
all=1
for h in $NODES; do healthy "$h" node || all=0; done
check "render nodes healthy (sshd accepts connections on 2222)" -- [ "$all" = 1 ]
made=$(cat "$S"/node*.log "$S/head.log" | grep -c "made the cluster's client key")
check "the four containers made one client key between them in the shared volume (made $made time)" -- [ "$made" -eq 1 ]
check "no key in the image: the keys are in the volume only" -- \
	eval "[ -s '$S/keys/id_ed25519' ] && [ -z \"\$(find /opt/drender -name 'id_*' -o -name '*host*key*')\" ]"
hf=$(grep -v '^#' "$S/home-head/hostfile" 2>/dev/null | tr '\n' ' ')
check "head's hostfile from the service list: head slots=1, then node1..node3 ($hf)" -- \
	[ "$hf" = "head slots=1 node1 slots=1 node2 slots=1 node3 slots=1 " ]
check "no demo.blend in the blend root: the head serves the image's demo scene" -- \
	grep -q "the default scene is the image's demo" "$S/head.log"

# --- the tutorial request, from another container on the network ----------------------------
# node1 plays the host's curl: Docker's port forwarding reaches the head's address, not its
# loopback, so this goes through the same path (forwarder on the head's address -> drender).
reply=$(in_container node1 curl -s -i -m 10 -X POST -H 'Content-Type: application/json' http://head:4000/render -d '{"from":1,"to":20}' 2>&1)
echo "$reply" | head -n 1 | diag
job=$(echo "$reply" | sed -n 's/.*"jobId" *: *"\([^"]*\)".*/\1/p')
check "curl -X POST http://head:4000/render -d '{\"from\":1,\"to\":20}' -> 202 with a jobId (${job:-none})" -- \
	eval "echo '$reply' | head -n 1 | grep -q ' 202' && [ -n '$job' ]"
status=""
deadline=$((SECONDS + 60))
while [ "$SECONDS" -lt "$deadline" ]; do
	status=$(in_container node1 curl -s -m 5 "http://head:4000/status/$job" 2>/dev/null)
	echo "$status" | grep -q '"state" *: *"done"' && break
	echo "$status" | grep -q '"state" *: *"\(failed\|cancelled\)"' && break
	sleep 0.5
done
summary=$(python3 -c '
import json, sys
try:
    s = json.loads(sys.argv[1])
except Exception:
    print("state=? done=? hosts=?"); sys.exit(0)
hosts = sorted(n["host"] for n in s.get("nodes", []) if n.get("framesDone"))
print("state=%s done=%s hosts=%s" % (s.get("state"), s.get("frames", {}).get("done"), ",".join(hosts)))
print("# " + " ".join("%s:%s" % (n["host"], n.get("framesDone")) for n in s.get("nodes", [])))
' "$status")
echo "$summary" | sed -n 2p
summary=$(echo "$summary" | head -n 1)
check "GET /status/$job: job done, 20 frames ($summary)" -- eval "echo '$summary' | grep -q '^state=done done=20 '"
frames=$(find "$S/output/$job" -name '*.png' -size +0 2>/dev/null | wc -l)
check "20 frames in the output volume under the job's directory (got $frames)" -- [ "$frames" -eq 20 ]
nh=$(echo "$summary" | sed -n 's/.*hosts=//p' | tr ',' '\n' | grep -c .)
check "frames rendered on >= 2 render-node containers ($nh)" -- [ "$nh" -ge 2 ]

# --- docker compose down ----------------------------------------------------------------------
t1=$SECONDS
for pid in $(ip netns pids "$(ns_of head)"); do kill -TERM "$pid" 2>/dev/null; done
while [ -n "$(ip netns pids "$(ns_of head)")" ] && [ $((SECONDS - t1)) -lt 30 ]; do sleep 0.2; done
down=$((SECONDS - t1))
for h in $NODES; do
	for pid in $(ip netns pids "$(ns_of "$h")"); do kill -TERM "$pid" 2>/dev/null; done
done
# docker compose down waits for each container to stop; so does this (a busy machine is slow).
t2=$SECONDS
while [ -n "$(netns_pids)" ] && [ $((SECONDS - t2)) -lt 30 ]; do sleep 0.2; done
left=$(netns_pids | tr '\n' ' ')
check "SIGTERM (docker compose down): head stopped in ${down}s (< 30 s grace), nothing left in any container (${left:-none})" -- \
	eval "[ $down -lt 30 ] && [ -z '$left' ]"
for pid in $left; do echo "# left: $pid $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"; done
[ "$T_FAILED" -eq 0 ] || { echo "# head log:"; tail -n 30 "$S/head.log" | diag; }

[ "$T_FAILED" -eq 0 ]
