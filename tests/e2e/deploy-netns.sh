#!/bin/bash
# End-to-end (TAP): drender across several "hosts" built from network namespaces on one machine.
#
# Topology: a switch namespace holding a bridge, and four host namespaces (head, node1..node3),
# each joined to the bridge by a veth pair, addresses 10.77.0.0/24 that exist only inside these
# namespaces (nothing is routed anywhere else). Each host has its own UTS hostname, so the
# report's "host" (gethostname) tells the hosts apart. mpirun runs in "head"; an rsh agent
# (plm_rsh_agent) stands in for ssh: it runs the orted inside the namespace named by the host.
#
# Part 1: a job renders across the hosts; the report shows frames from >= 2 distinct hosts.
# Part 2: a host is taken away mid-job, both ways (its processes killed; its link taken down):
# the job must end within 60 s naming the host, leave no drender/Blender process behind, and a
# re-run must render only the missing frames.
#
# Failure detection is bounded by the same MCA parameters the job scripts set
# (oob_tcp_keepalive_time/intvl/probes = 10/2/5: a silent host is declared lost after ~20 s).
#
# Needs root (network namespaces), iproute2, unshare, Open MPI, python3. Cleans up whatever
# happens: namespaces, /etc/netns entries, processes it started, its temporary directory.
set -u

# shellcheck source-path=SCRIPTDIR source=deploy-lib.bash
. "$(dirname "$0")/deploy-lib.bash"
PLAN=24
FRAMES=36
COST=0.4        # fake Blender seconds per frame
# In the link-down case the job must still have frames to hand out when the lost host is
# detected (~20 s later), so that the re-run has something to do: slower frames there.
LINK_COST=2.0
BOUND=60                         # the job must end this many seconds after the host goes away
# Same failure-detection bound as scripts/slurm/drender.sbatch and the Docker entrypoint.
KA_TIME=10 KA_INTVL=2 KA_PROBES=5

skip_if_fast_only
need_root "network namespaces need root"
need_tools ip unshare mpirun python3

netns_init drn             # namespace and interface names drn<PID>... (<= 15 chars for links)
HOSTS="head node1 node2 node3"
T=$(new_tmp -d netns)
OUT=$T/out
BG=""                      # PIDs of background jobs we started

cleanup() {
	local pid
	for pid in $BG; do kill -9 "$pid" 2>/dev/null; done
	netns_cleanup
	keep_logs "$T"/*.log "$T"/*.json
	rm -rf "$T"
}
on_exit cleanup

# --- build the "cluster" ----------------------------------------------------------------
# shellcheck disable=SC2086
if ! netns_cluster 10.77.0 "$T" $HOSTS >"$T/setup.log" 2>&1; then
	echo "1..0 # SKIP cannot create network namespaces, veth pairs or a bridge here: $(tail -n 1 "$T/setup.log")"
	exit 0
fi

# The rsh agent: Open MPI runs "AGENT [options] HOST COMMAND..." as it would run ssh; run the
# command inside HOST's namespace, under HOST as UTS hostname, through a shell as sshd would.
# Like ssh, the agent itself stays on the launching side (outside HOST's namespace): when the
# remote side is killed it says so, naming the host, and exits 255 as ssh does when it loses
# its connection.
cat >"$T/agent" <<EOF
#!/bin/sh
while [ \$# -gt 0 ]; do case \$1 in -*) shift ;; *) break ;; esac; done
host=\$1; shift
ns=\$(awk -v h="\$host" '\$1 == h { print \$2 }' "$T/nsmap")
if [ -z "\$ns" ]; then echo "netns-agent: unknown host \$host" >&2; exit 255; fi
ip netns exec "\$ns" unshare --uts /bin/sh -c 'hostname "\$0" && exec /bin/sh -c "\$1"' "\$host" "\$*"
rc=\$?
if [ \$rc -gt 128 ]; then
	echo "netns-agent: connection to \$host closed: remote command killed by signal \$((rc - 128))" >&2
	exit 255
fi
exit \$rc
EOF
chmod +x "$T/agent"
printf 'head slots=1\nnode1 slots=1\nnode2 slots=1\nnode3 slots=1\n' >"$T/hostfile"

mpi_as_root
MPIRUN_ARGS="--hostfile $T/hostfile --mca plm_rsh_agent $T/agent
 --mca btl self,vader,tcp --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24
 --mca oob_tcp_keepalive_time $KA_TIME --mca oob_tcp_keepalive_intvl $KA_INTVL
 --mca oob_tcp_keepalive_probes $KA_PROBES"

on_head() { # run a command line in the head namespace, hostname "head"
	as_host head "$@"
}

echo "1..$PLAN"

# --- 1: the launcher reaches every namespace ----------------------------------------------
# shellcheck disable=SC2086
# (stdout only: Open MPI's own warnings, e.g. "setpgid failed" under gVisor, go to stderr)
on_head timeout 60 mpirun $MPIRUN_ARGS -np 4 hostname >"$T/hostname.out" 2>"$T/hostname.err"
sort "$T/hostname.out" | tr '\n' ' ' >"$T/hostname.sorted"
check "mpirun through the rsh agent runs on head, node1, node2, node3" \
	grep -qx 'head node1 node2 node3 ' "$T/hostname.sorted"
[ "$n" -eq 1 ] && [ "$failed" -eq 0 ] || cat "$T/hostname.out" "$T/hostname.err" | diag

# --- the real binary ---------------------------------------------------------------------
check_drender
printf 'BLENDER-v300 fake scene for drender deploy tests\n' >"$T/scene.blend"
mkdir -p "$T/out"

# drender_job NAME: start the job in the background (mpirun's PID in JOB_PID), output in
# $T/NAME.log, report in $T/NAME.json.
drender_job() {
	# shellcheck disable=SC2086
	FAKE_BLENDER_COST=$COST on_head mpirun $MPIRUN_ARGS -np 4 -x FAKE_BLENDER_COST \
		"$DRENDER" --blender "$FAKE" -o "$T/out/frame_####" --retries 2 \
		--report "$T/$1.json" "$T/scene.blend" 1 "$FRAMES" >"$T/$1.log" 2>&1 &
	JOB_PID=$!
	BG="$BG $JOB_PID"
}
# wait_job SECONDS: wait for JOB_PID at most SECONDS; JOB_RC = its status (124 if killed)
wait_job() {
	wait_pid "$JOB_PID" "$1"
	JOB_RC=$?
}
# report_summary FILE: "frames=N rendered=R skipped=S hosts=H" plus "# host: count" lines
report_summary() {
	python3 - "$1" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
frames = r.get("frames", [])
def skipped(f):
    return f.get("state") == "skipped"
rendered = [f for f in frames if not skipped(f) and f.get("output")]
hosts = {}
for f in rendered:
    hosts[f.get("host")] = hosts.get(f.get("host"), 0) + 1
print("frames=%d rendered=%d skipped=%d hosts=%d" %
      (len(frames), len(rendered), sum(1 for f in frames if skipped(f)), len(hosts)))
for h, c in sorted(hosts.items(), key=lambda kv: str(kv[0])):
    print("# frames rendered on %s: %d" % (h, c))
EOF
}
leftovers() { # processes of ours still alive: in the host namespaces, or naming our scene
	netns_pids
	pgrep -f "$T/scene.blend"
}

# --- part 1: render across the hosts ------------------------------------------------------
drender_job full
wait_job 120
check "job across 4 namespace hosts exits 0 (got $JOB_RC)" [ "$JOB_RC" -eq 0 ]
[ "$JOB_RC" -eq 0 ] || tail -n 20 "$T/full.log" | diag
got=$(frames_on_disk)
check "all $FRAMES frames on disk (got $got)" [ "$got" -eq "$FRAMES" ]
summary=$(report_summary "$T/full.json" 2>&1)
echo "$summary" | grep '^#'
hosts=$(echo "$summary" | sed -n 's/.*hosts=\([0-9]*\).*/\1/p')
check "report: frames rendered on >= 2 distinct hosts (got ${hosts:-none})" [ "${hosts:-0}" -ge 2 ]
check "no drender or Blender process left after the job" gone_within 10 leftovers

reachable_again() { # after the link is back up, wait until the launcher reaches node3 again
	local t0=$SECONDS i
	for i in $(seq 1 30); do
		# shellcheck disable=SC2086
		if on_head timeout 10 mpirun $MPIRUN_ARGS -np 4 hostname >"$T/reach.log" 2>&1; then
			echo "# node3 reachable again $((SECONDS - t0)) s after its link came back (try $i)"
			return 0
		fi
		sleep 1
	done
	diag <"$T/reach.log"
	return 1
}
only_missing_rendered() { # HOW RENDERED SKIPPED BEFORE
	[ "$2" = $((FRAMES - $4)) ] && [ "$3" = "$4" ] &&
		untouched "$T/$1.before" "$T/$1.after"
}

# --- part 2: a host goes away mid-job ------------------------------------------------------
# lose_host HOW: HOW is "kill" (all of node3's processes SIGKILLed) or "link" (node3's link down)
lose_host() {
	local how=$1 t0 t1 elapsed before
	rm -f "$T"/out/*
	[ "$how" = link ] && COST=$LINK_COST
	drender_job "$how"
	# Wait until the job is well under way (some frames done) before taking node3 away.
	local deadline=$(($(date +%s) + 60))
	while [ "$(frames_on_disk)" -lt 6 ] && kill -0 "$JOB_PID" 2>/dev/null &&
		[ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
	t0=$(date +%s.%N)
	if [ "$how" = kill ]; then
		# shellcheck disable=SC2046
		kill -9 $(ip netns pids "$(ns_of node3)") 2>/dev/null
	else
		ip -n "$SW" link set "${P}v3" down
	fi
	wait_job $((BOUND + 5))
	t1=$(date +%s.%N)
	elapsed=$(python3 -c "print(round($t1 - $t0, 1))")
	echo "# $how: job ended ${elapsed}s after node3 went away, status $JOB_RC"
	grep -v '^\s*$' "$T/$how.log" | grep -v 'frame .* done by' | tail -n 25 >"$T/$how.tail"
	check "$how: job ends within ${BOUND}s of losing node3 (${elapsed}s)" \
		python3 -c "import sys; sys.exit(0 if $elapsed < $BOUND and $JOB_RC != 124 else 1)"
	check "$how: exit status is a failure (got $JOB_RC)" eval "[ $JOB_RC -ne 0 ] && [ $JOB_RC -ne 124 ]"
	# Progress lines ("done by rank 3 (node3)") and the summary table name node3 anyway: look
	# at the other lines only.
	grep 'node3' "$T/$how.log" | grep -v 'done by rank' | grep -Ev '^ +[0-9]+ +node3 ' >"$T/$how.err"
	echo "# lines naming node3:"
	diag <"$T/$how.err"
	check "$how: an error message names the lost host node3" [ -s "$T/$how.err" ]
	check "$how: no drender or Blender process left (any namespace)" gone_within 15 leftovers
	if [ "$how" = link ]; then
		ip -n "$SW" link set "${P}v3" up
		reachable_again
	fi
	# Re-run: only the missing frames are rendered, the others are left as they are.
	before=$(frames_on_disk)
	list_frames "$T/$how.before"
	drender_job "$how-rerun"
	wait_job 120
	local after
	after=$(frames_on_disk)
	summary=$(report_summary "$T/$how-rerun.json" 2>&1)
	echo "# $how re-run: $before frames were on disk; report $summary" | head -n 1
	check "$how: re-run exits 0 with all $FRAMES frames (status $JOB_RC, $after frames)" \
		eval "[ $JOB_RC -eq 0 ] && [ $after -eq $FRAMES ]"
	[ "$JOB_RC" -eq 0 ] || tail -n 20 "$T/$how-rerun.log" | diag
	local rendered skipped
	rendered=$(echo "$summary" | sed -n 's/.*rendered=\([0-9]*\).*/\1/p')
	skipped=$(echo "$summary" | sed -n 's/.*skipped=\([0-9]*\).*/\1/p')
	list_frames "$T/$how.after"
	check "$how: re-run rendered only the $((FRAMES - before)) missing frames (report: rendered=${rendered:-?} skipped=${skipped:-?}; earlier files untouched)" \
		only_missing_rendered "$how" "${rendered:-x}" "${skipped:-x}" "$before"
}
lose_host kill
lose_host link

# --- part 3: the same losses under mpirun --enable-recovery ---------------------------------
# Link down: drender declares node3 lost after --node-timeout, the survivors finish the job, and
# rank 0's report says exit 0 with every frame on disk; the time from the loss to the requeue is
# printed. mpirun itself may then wait for the lost host's daemon: the launch scripts end it once
# rank 0's report is written (DRENDER_FINAL_GRACE), and so does this test.
# Killed: Open MPI 4.1's rsh launcher takes the end of a host's ssh session (the agent exiting
# 255) for a daemon that failed to start and aborts the job even with --enable-recovery: that
# case still ends the job (then a re-run resumes, as in part 2), marked TODO here.
mpirun_in_head() { ip netns pids "$(ns_of head)" | while read -r p; do
	[ "$(cat "/proc/$p/comm" 2>/dev/null)" = mpirun ] && echo "$p"; done; }
survive_host() {
	local how=$1 t0 tl elapsed rc0 todo=""
	[ "$how" = kill ] && todo=" # TODO Open MPI's rsh launcher aborts on a dead host's session"
	rm -f "$T"/out/*
	COST=$LINK_COST
	# shellcheck disable=SC2086
	FAKE_BLENDER_COST=$COST on_head mpirun --enable-recovery $MPIRUN_ARGS -np 4 \
		-x FAKE_BLENDER_COST "$DRENDER" --blender "$FAKE" -o "$T/out/frame_####" --retries 2 \
		--node-timeout 5 --report "$T/s$how.json" "$T/scene.blend" 1 "$FRAMES" \
		>"$T/s$how.log" 2>&1 &
	JOB_PID=$!
	BG="$BG $JOB_PID"
	local deadline=$(($(date +%s) + 60))
	while [ "$(frames_on_disk)" -lt 6 ] && kill -0 "$JOB_PID" 2>/dev/null &&
		[ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
	t0=$(date +%s.%N)
	if [ "$how" = kill ]; then
		# shellcheck disable=SC2046
		kill -9 $(ip netns pids "$(ns_of node3)") 2>/dev/null
	else
		ip -n "$SW" link set "${P}v3" down
	fi
	deadline=$(($(date +%s) + 60))
	until grep -q "rank 3 (node3) is lost" "$T/s$how.log" || [ -s "$T/s$how.json" ] ||
		[ "$(date +%s)" -ge "$deadline" ]; do
		sleep 0.1
	done
	tl=$(date +%s.%N)
	grep -q "rank 3 (node3) is lost" "$T/s$how.log" &&
		echo "# $how (recovery): node3 declared lost, its frames requeued $(python3 -c "print(round($tl - $t0, 1))") s after it went away"
	deadline=$(($(date +%s) + 180))
	until [ -s "$T/s$how.json" ] || ! kill -0 "$JOB_PID" 2>/dev/null ||
		[ "$(date +%s)" -ge "$deadline" ]; do sleep 0.2; done
	elapsed=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
	rc0=$(python3 -c "import json; print(json.load(open('$T/s$how.json'))['exit_code'])" 2>/dev/null)
	n=$((n + 1))
	if [ "$rc0" = 0 ]; then echo "ok $n - $how (recovery): rank 0 reports exit 0 (${elapsed}s after the loss)$todo"
	else echo "not ok $n - $how (recovery): rank 0 reports exit 0 (got '${rc0:-no report}')$todo"; [ -z "$todo" ] && failed=$((failed + 1)); fi
	n=$((n + 1))
	if [ "$(frames_on_disk)" -eq "$FRAMES" ]; then echo "ok $n - $how (recovery): all $FRAMES frames on disk$todo"
	else echo "not ok $n - $how (recovery): all $FRAMES frames on disk ($(frames_on_disk))$todo"; [ -z "$todo" ] && failed=$((failed + 1)); fi
	deadline=$(($(date +%s) + 30))
	while kill -0 "$JOB_PID" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.5; done
	if kill -0 "$JOB_PID" 2>/dev/null; then
		echo "# $how (recovery): mpirun still waits 30 s after rank 0's report: ended, as the launch scripts do"
		# shellcheck disable=SC2046
		kill -TERM $(mpirun_in_head) 2>/dev/null
		wait_pid "$JOB_PID" 30 >/dev/null 2>&1
	else
		echo "# $how (recovery): mpirun exited by itself"
		wait "$JOB_PID" 2>/dev/null
	fi
	[ "$how" = link ] && ip -n "$SW" link set "${P}v3" up
	check "$how (recovery): no drender or Blender process left" gone_within 30 leftovers
}
survive_host kill
survive_host link

[ "$failed" -eq 0 ]
