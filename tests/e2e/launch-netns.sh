#!/bin/bash
# End-to-end (TAP): scripts/drender-mpirun after a real host loss, on four network-namespace
# "hosts" (tests/e2e/deploy-lib.bash), launched as our ssh-based paths launch (drender-rsh).
#
# 1. Batch: node3's link is cut mid-job. Rank 0 declares it lost, the survivors finish and rank 0
#    writes its status; mpirun then goes on waiting for node3's daemon (Open MPI 4.1). The wrapper
#    must end it DRENDER_FINAL_GRACE seconds after rank 0's word and exit 0, with every frame
#    and nothing left running on any host.
# 2. Service (head, node1, node2): node2's link cut under --serve, then SIGTERM to the wrapper (a container stop): mpirun
#    has been seen ignoring SIGTERM there; the wrapper must return within its graces with rank
#    0's status and nothing left running.
# Prints the seconds from the cut to rank 0's word and to the wrapper's exit.
set -u

# shellcheck source-path=SCRIPTDIR source=deploy-lib.bash
. "$(dirname "$0")/deploy-lib.bash"
PLAN=11
skip_if_fast_only
need_root "network namespaces need root"
need_tools ip unshare mpirun python3 curl

netns_init dlw
HOSTS="head node1 node2 node3"
T=$(new_tmp -d launch-netns)
OUT=$T/out
BG=""
cleanup() {
	local pid
	for pid in $BG; do kill -9 "$pid" 2>/dev/null; done
	netns_cleanup
	keep_logs "$T"/*.log
	rm -rf "$T"
}
on_exit cleanup

# shellcheck disable=SC2086
if ! netns_cluster 10.76.0 "$T" $HOSTS >"$T/setup.log" 2>&1; then
	skip_all "cannot create network namespaces, veth pairs or a bridge: $(tail -n 1 "$T/setup.log")"
fi
netns_rsh_agent "$T/agent" "$T/nsmap"
printf 'head slots=1\nnode1 slots=1\nnode2 slots=1\nnode3 slots=1\n' >"$T/hostfile"
printf 'head slots=1\nnode1 slots=1\nnode2 slots=1\n' >"$T/hostfile2" # without node3 (cut before)
mpi_as_root
# shellcheck disable=SC2054 # commas inside MCA values
NET=(--mca btl self,vader,tcp
	--mca btl_tcp_if_include 10.76.0.0/24 --mca oob_tcp_if_include 10.76.0.0/24
	--mca oob_tcp_keepalive_time 10 --mca oob_tcp_keepalive_intvl 2
	--mca oob_tcp_keepalive_probes 5)
echo "1..$PLAN"
need_drender
printf 'BLENDER-v300 fake scene for drender launch tests\n' >"$T/scene.blend"
mkdir -p "$OUT"
secs() { python3 -c "print(round($(date +%s.%N) - $1, 1))"; }

# wrapped HOSTFILE NP ARGS...: drender-mpirun in head (hostname head), through drender-rsh, in
# the background; JOB_PID is the wrapper's.
wrapped() {
	local hf=$1 np=$2
	shift 2
	OMPI_MCA_plm_rsh_agent="$TOP/scripts/drender-rsh --agent=$T/agent" \
		ip netns exec "$(ns_of head)" unshare --uts /bin/sh -c 'hostname head && exec "$@"' sh \
		"$TOP/scripts/drender-mpirun" --hostfile "$hf" "${NET[@]}" -np "$np" \
		-x FAKE_BLENDER_COST "$@" &
	JOB_PID=$!
	BG="$BG $JOB_PID"
}
cut() { ip -n "$SW" link set "${P}v$1" down; } # cut N: nodeN's link down
lost() { grep -q "rank $1 (node$1) is lost" "$2"; }     # lost N LOG
nothing_left() { # nothing_left HOST...: the processes still in those hosts
	local h
	for h; do ip netns pids "$(ns_of "$h")"; done
}

# --- 1: batch, link cut ------------------------------------------------------------------------
GRACE=5
FAKE_BLENDER_COST=1.0 DRENDER_FINAL_GRACE=$GRACE wrapped "$T/hostfile" 4 "$DRENDER" --blender "$FAKE" \
	-o "$OUT/frame_####" --node-timeout 5 --report "$T/batch.json" "$T/scene.blend" 1 24 \
	>"$T/batch.log" 2>&1
deadline=$(($(date +%s) + 60))
until [ "$(frames_on_disk)" -ge 6 ] || [ "$(date +%s)" -ge "$deadline" ]; do sleep 0.2; done
cut 3
t0=$(date +%s.%N)
deadline=$(($(date +%s) + 120))
until [ -s "$T/batch.json" ] || ! kill -0 "$JOB_PID" 2>/dev/null ||
	[ "$(date +%s)" -ge "$deadline" ]; do sleep 0.2; done
word=$(secs "$t0")
wait_pid "$JOB_PID" $((GRACE + 60))
rc=$?
took=$(secs "$t0")
echo "# batch, link cut: rank 0's word ${word} s after the cut, drender-mpirun exited ${took} s after (DRENDER_FINAL_GRACE=$GRACE)"
check "batch, link cut: node3 declared lost" -- lost 3 "$T/batch.log"
check "batch, link cut: drender-mpirun exits 0 (got $rc)" -- [ "$rc" -eq 0 ]
check "batch, link cut: every frame on disk ($(frames_on_disk))" -- [ "$(frames_on_disk)" -eq 24 ]
check "batch, link cut: ended within rank 0's word + grace $GRACE s + 15 s (${took} s)" -- \
	python3 -c "import sys; sys.exit(0 if $took <= $word + $GRACE + 15 else 1)"
gone_within 30 nothing_left head node1 node2 # node3 is cut off: its daemon ends by keepalive
left=$(nothing_left head node1 node2 | tr '\n' ' ')
check "batch, link cut: nothing left on head, node1, node2 (${left:-none})" -- [ -z "$left" ]
gone_within 60 nothing_left node3
left=$(nothing_left node3 | tr '\n' ' ')
check "batch, link cut: the cut-off node3's daemon and ranks end by themselves (${left:-none})" -- \
	[ -z "$left" ]
grep 'drender-mpirun' "$T/batch.log" | diag

# --- 2: service on head, node1, node2; node2's link cut, then SIGTERM ----------------------------
mkdir -p "$T/srv"
FAKE_BLENDER_COST=0.5 DRENDER_FINAL_GRACE=$GRACE DRENDER_KILL_GRACE=10 wrapped "$T/hostfile2" 3 "$DRENDER" \
	--blender "$FAKE" --serve --listen 127.0.0.1:4000 --scene "$T/scene.blend" \
	--blend-root "$T" --output-root "$T/srv" --node-timeout 5 >"$T/serve.log" 2>&1
# Up means rank 0 answers and both render nodes have joined (/metrics counts them idle): /health
# alone can answer before node1's and node2's daemons are all in, and a link cut then is a failed
# launch (ORTE "unable to reliably start one or more daemons"), not a lost node.
nodes_in() {
	ip netns exec "$(ns_of head)" curl -sf http://127.0.0.1:4000/metrics 2>/dev/null |
		grep -q 'drender_render_nodes{state="idle"} 2'
}
deadline=$(($(date +%s) + 60))
until nodes_in || [ "$(date +%s)" -ge "$deadline" ]; do sleep 0.3; done
check "service: up on head, node1, node2" -- \
	ip netns exec "$(ns_of head)" curl -sf -o /dev/null http://127.0.0.1:4000/health
cut 2
deadline=$(($(date +%s) + 60))
until lost 2 "$T/serve.log" || [ "$(date +%s)" -ge "$deadline" ]; do sleep 0.2; done
check "service, link cut: node2 declared lost" -- lost 2 "$T/serve.log" ||
	grep -v 'frame .* done by' "$T/serve.log" | tail -n 30 | diag
t0=$(date +%s.%N)
kill -TERM "$JOB_PID"
wait_pid "$JOB_PID" 60
rc=$?
took=$(secs "$t0")
echo "# service, link cut, SIGTERM: drender-mpirun exited ${took} s after the signal, status $rc"
check "service, SIGTERM after a link cut: ends within DRENDER_KILL_GRACE 10 s + 10 s (${took} s), status $rc not a kill" -- \
	python3 -c "import sys; sys.exit(0 if $took <= 20 and $rc < 124 else 1)"
gone_within 30 nothing_left head node1
left=$(nothing_left head node1 | tr '\n' ' ')
check "service: nothing left on head, node1 (${left:-none})" -- [ -z "$left" ]
check "service: rank 0 stopped the service (its log says so)" -- \
	grep -q "stopping the service" "$T/serve.log"
grep 'drender-mpirun' "$T/serve.log" | diag

[ "$T_FAILED" -eq 0 ]
