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
# Part 2: plain mpirun: a host is taken away mid-job, both ways (its processes killed; its link
# taken down): the job must end within 60 s naming the host, leave no drender/Blender process
# behind, and a re-run must render only the missing frames.
# Part 3: mpirun --enable-recovery through scripts/drender-rsh: node3's processes killed, its
# link down, its link flapping (down, up again once it is declared lost), its processes stopped
# (SIGSTOP, continued once lost): each job ends with exit 0 and every frame, counted once, node3
# gets no work once lost, nothing is left; seconds from fault to requeue are printed.
# DEPLOY_NETNS_FAULTS="kill link flap stop" (the default) picks which.
# Part 4: the same host loss (link down) under --serve with two jobs queued: both finish, /health
# and a third job answer, /metrics counts the lost node. DEPLOY_NETNS_SERVE_FAULTS="link" (the
# default; any of kill link flap stop) picks which.
# A table of the recovery cases ends the output (TAP comments).
#
# Failure detection is bounded by the same MCA parameters the job scripts set
# (oob_tcp_keepalive_time/intvl/probes = 10/2/5: a silent host is declared lost after ~20 s).
#
# Needs root (network namespaces), iproute2, unshare, Open MPI, python3. Cleans up whatever
# happens: namespaces, /etc/netns entries, processes it started, its temporary directory.
set -u

# shellcheck source-path=SCRIPTDIR source=deploy-lib.bash
. "$(dirname "$0")/deploy-lib.bash"
PLAN=0 # the plan is printed at the end
FRAMES=36
COST=0.4        # fake Blender seconds per frame
# In the link-down case the job must still have frames to hand out when the lost host is
# detected (~20 s later), so that the re-run has something to do: slower frames there.
LINK_COST=2.0
# Under --enable-recovery node3 is declared lost after --node-timeout (5 s): 1 s frames leave the
# survivors work to finish after that, in half the time LINK_COST would take.
RECOVERY_COST=1.0
# Seconds mpirun gets to exit by itself after rank 0's last word before this test ends it (the
# launch scripts' DRENDER_FINAL_GRACE, 30 s by default; nothing here depends on its length).
FINAL_GRACE=5
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

netns_rsh_agent "$T/agent" "$T/nsmap"
printf 'head slots=1\nnode1 slots=1\nnode2 slots=1\nnode3 slots=1\n' >"$T/hostfile"

mpi_as_root
MPIRUN_NET="--hostfile $T/hostfile
 --mca btl self,vader,tcp --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24
 --mca oob_tcp_keepalive_time $KA_TIME --mca oob_tcp_keepalive_intvl $KA_INTVL
 --mca oob_tcp_keepalive_probes $KA_PROBES"
MPIRUN_ARGS="$MPIRUN_NET --mca plm_rsh_agent $T/agent"

on_head() { # run a command line in the head namespace, hostname "head"
	as_host head "$@"
}



# --- 1: the launcher reaches every namespace ----------------------------------------------
# shellcheck disable=SC2086
# (stdout only: Open MPI's own warnings, e.g. "setpgid failed" under gVisor, go to stderr)
on_head timeout 60 mpirun $MPIRUN_ARGS -np 4 hostname >"$T/hostname.out" 2>"$T/hostname.err"
sort "$T/hostname.out" | tr '\n' ' ' >"$T/hostname.sorted"
check "mpirun through the rsh agent runs on head, node1, node2, node3" -- \
	grep -qx 'head node1 node2 node3 ' "$T/hostname.sorted"
[ "$T_N" -eq 1 ] && [ "$T_FAILED" -eq 0 ] || cat "$T/hostname.out" "$T/hostname.err" | diag

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
check "job across 4 namespace hosts exits 0 (got $JOB_RC)" -- [ "$JOB_RC" -eq 0 ]
[ "$JOB_RC" -eq 0 ] || tail -n 20 "$T/full.log" | diag
got=$(frames_on_disk)
check "all $FRAMES frames on disk (got $got)" -- [ "$got" -eq "$FRAMES" ]
summary=$(report_summary "$T/full.json" 2>&1)
echo "$summary" | grep '^#'
hosts=$(echo "$summary" | sed -n 's/.*hosts=\([0-9]*\).*/\1/p')
check "report: frames rendered on >= 2 distinct hosts (got ${hosts:-none})" -- [ "${hosts:-0}" -ge 2 ]
check "no drender or Blender process left after the job" -- gone_within 10 leftovers

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
# take_host_away HOW LOG: once the job (JOB_PID) is well under way (6 frames on disk), take node3
# away; T0 = when (date +%s.%N), LOST_S = seconds from then to LOG's "rank 3 (node3) is lost"
# (its frames requeued), when HOW waits for it. HOW:
#   kill  every process in node3's namespace SIGKILLed (its orted, rank and Blender)
#   link  node3's link down (the caller brings it back)
#   flap  link down, and up again once node3 is declared lost
#   stop  node3's processes SIGSTOPped (a frozen host), continued once it is declared lost
# shellcheck disable=SC2046 # lists of PIDs are split on purpose
take_host_away() {
	local how=$1 log=$2 deadline=$(($(date +%s) + 60))
	while [ "$(frames_on_disk)" -lt 6 ] && kill -0 "$JOB_PID" 2>/dev/null &&
		[ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
	T0=$(date +%s.%N)
	LOST_S=""
	case $how in
	kill) kill -9 $(ip netns pids "$(ns_of node3)") 2>/dev/null ;;
	link | flap) ip -n "$SW" link set "${P}v3" down ;;
	stop) kill -STOP $(ip netns pids "$(ns_of node3)") 2>/dev/null ;;
	esac
	case $how in flap | stop)
		await_lost "$log" 60
		case $how in
		flap) ip -n "$SW" link set "${P}v3" up ;;
		stop) kill -CONT $(ip netns pids "$(ns_of node3)") 2>/dev/null ;;
		esac
		;;
	esac
}
# await_lost LOG SECONDS: wait until LOG says node3 is lost; LOST_S = seconds since T0 (if it did)
await_lost() {
	local deadline=$(($(date +%s) + $2))
	until grep -q "rank 3 (node3) is lost" "$1" || [ "$(date +%s)" -ge "$deadline" ]; do
		sleep 0.1
	done
	grep -q "rank 3 (node3) is lost" "$1" || return 1
	[ -n "$LOST_S" ] || LOST_S=$(python3 -c "print(round($(date +%s.%N) - $T0, 1))")
}
# lose_host HOW: HOW is "kill" (all of node3's processes SIGKILLed) or "link" (node3's link down)
lose_host() {
	local how=$1 t0 t1 elapsed before
	rm -f "$T"/out/*
	[ "$how" = link ] && COST=$LINK_COST
	drender_job "$how"
	take_host_away "$how" "$T/$how.log"
	t0=$T0
	wait_job $((BOUND + 5))
	t1=$(date +%s.%N)
	elapsed=$(python3 -c "print(round($t1 - $t0, 1))")
	echo "# $how: job ended ${elapsed}s after node3 went away, status $JOB_RC"
	grep -v '^\s*$' "$T/$how.log" | grep -v 'frame .* done by' | tail -n 25 >"$T/$how.tail"
	check "$how: job ends within ${BOUND}s of losing node3 (${elapsed}s)" -- \
		python3 -c "import sys; sys.exit(0 if $elapsed < $BOUND and $JOB_RC != 124 else 1)"
	check "$how: exit status is a failure (got $JOB_RC)" -- eval "[ $JOB_RC -ne 0 ] && [ $JOB_RC -ne 124 ]"
	# Progress lines ("done by rank 3 (node3)") and the summary table name node3 anyway: look
	# at the other lines only.
	grep 'node3' "$T/$how.log" | grep -v 'done by rank' | grep -Ev '^ +[0-9]+ +node3 ' >"$T/$how.err"
	echo "# lines naming node3:"
	diag <"$T/$how.err"
	check "$how: an error message names the lost host node3" -- [ -s "$T/$how.err" ]
	check "$how: no drender or Blender process left (any namespace)" -- gone_within 15 leftovers
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
	check "$how: re-run exits 0 with all $FRAMES frames (status $JOB_RC, $after frames)" -- \
		eval "[ $JOB_RC -eq 0 ] && [ $after -eq $FRAMES ]"
	[ "$JOB_RC" -eq 0 ] || tail -n 20 "$T/$how-rerun.log" | diag
	local rendered skipped
	rendered=$(echo "$summary" | sed -n 's/.*rendered=\([0-9]*\).*/\1/p')
	skipped=$(echo "$summary" | sed -n 's/.*skipped=\([0-9]*\).*/\1/p')
	list_frames "$T/$how.after"
	check "$how: re-run rendered only the $((FRAMES - before)) missing frames (report: rendered=${rendered:-?} skipped=${skipped:-?}; earlier files untouched)" -- \
		only_missing_rendered "$how" "${rendered:-x}" "${skipped:-x}" "$before"
}
lose_host kill
lose_host link


# --- part 3: the same losses, and more, under mpirun --enable-recovery -----------------------
# Launched the way our ssh-based paths launch: Open MPI's rsh agent is scripts/drender-rsh around
# the namespace agent. Open MPI 4.1 takes any non-zero exit of the agent for a daemon that failed
# to start and aborts the job whatever --enable-recovery says (plm_rsh_module.c rsh_wait_daemon,
# errmgr_default_hnp.c FAILED_TO_START); drender-rsh exits 0 when a session that had started its
# daemon ends, so a killed host is a lost daemon (COMM_FAILED), which recovery survives.
# Each fault: node3 is declared lost after --node-timeout, its frames are requeued (the time from
# the fault is printed), the survivors finish, rank 0's report says exit 0 with every frame on
# disk, no frame counted twice, node3 gets no new work after it is declared lost, and nothing is
# left running. mpirun itself may wait for a lost host's daemon: the launch scripts end it once
# rank 0's report is written (DRENDER_FINAL_GRACE), and so does this test.
RSH_AGENT="$TOP/scripts/drender-rsh --agent=$T/agent"
mpirun_in_head() { ip netns pids "$(ns_of head)" | while read -r p; do
	[ "$(cat "/proc/$p/comm" 2>/dev/null)" = mpirun ] && echo "$p"; done; }
# recovery_mpirun ARGS...: mpirun --enable-recovery in head, through drender-rsh, in the background
recovery_mpirun() {
	# shellcheck disable=SC2016,SC2086 # (not through on_head: JOB_PID is then mpirun's own PID)
	OMPI_MCA_plm_rsh_agent=$RSH_AGENT FAKE_BLENDER_COST=$COST FAKE_BLENDER_LOG=$FB_LOG \
		ip netns exec "$(ns_of head)" unshare --uts /bin/sh -c 'hostname head && exec "$@"' sh \
		mpirun --enable-recovery $MPIRUN_NET -np 4 -x FAKE_BLENDER_COST -x FAKE_BLENDER_LOG "$@" &
	JOB_PID=$!
	BG="$BG $JOB_PID"
}
# end_mpirun LOG: give mpirun FINAL_GRACE s to exit after rank 0's last word, then end it (TERM)
end_mpirun() {
	local deadline=$(($(date +%s) + FINAL_GRACE))
	while kill -0 "$JOB_PID" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
	if kill -0 "$JOB_PID" 2>/dev/null; then
		echo "# $1: mpirun still waits $FINAL_GRACE s after rank 0's last word: ended, as the launch scripts do"
		# shellcheck disable=SC2046
		kill -TERM $(mpirun_in_head) 2>/dev/null
		wait_pid "$JOB_PID" 30 >/dev/null 2>&1
	else
		echo "# $1: mpirun exited by itself"
		wait "$JOB_PID" 2>/dev/null
	fi
}
saved_twice() { # frames the fake Blender saved more than once (wasted work, not double counting)
	awk '$1 == "saved" {print $3}' "$FB_LOG" | sort | uniq -d | wc -l
}
# no_work_after_lost LOG: after "rank 3 (node3) is lost", no frame is done by rank 3 but a late
# result counted once (and the log's counts say so)
no_work_after_lost() {
	! sed -n '/rank 3 (node3) is lost/,$p' "$1" | grep 'done by rank 3 ' |
		grep -qv 'late, from a node declared lost'
}
# counted_once JSON N: the report counts N frames rendered and lists each frame once
counted_once() {
	python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
fr = [f["frame"] for f in r["frames"]]
sys.exit(0 if r["counts"]["rendered"] == int(sys.argv[2]) and len(fr) == len(set(fr)) else 1)
PY
}
survive_host() { # survive_host HOW (see take_host_away)
	local how=$1 elapsed rc0 log=$T/s$1.log
	rm -f "$T"/out/*
	COST=$RECOVERY_COST
	FB_LOG=$T/s$how.fb
	: >"$FB_LOG"
	recovery_mpirun "$DRENDER" --blender "$FAKE" -o "$T/out/frame_####" --retries 2 \
		--node-timeout 5 --report "$T/s$how.json" "$T/scene.blend" 1 "$FRAMES" >"$log" 2>&1
	take_host_away "$how" "$log"
	await_lost "$log" 60
	check "$how (recovery): node3 declared lost, its frames requeued (${LOST_S:-never} s after the fault)" -- \
		[ -n "$LOST_S" ]
	local deadline=$(($(date +%s) + 180))
	until [ -s "$T/s$how.json" ] || ! kill -0 "$JOB_PID" 2>/dev/null ||
		[ "$(date +%s)" -ge "$deadline" ]; do sleep 0.2; done
	elapsed=$(python3 -c "print(round($(date +%s.%N) - $T0, 1))")
	rc0=$(python3 -c "import json; print(json.load(open('$T/s$how.json'))['exit_code'])" 2>/dev/null)
	check "$how (recovery): rank 0 reports exit 0 (got '${rc0:-no report}', ${elapsed}s after the fault)" -- \
		[ "$rc0" = 0 ]
	[ "$rc0" = 0 ] || tail -n 20 "$log" | diag
	check "$how (recovery): all $FRAMES frames on disk ($(frames_on_disk))" -- \
		[ "$(frames_on_disk)" -eq "$FRAMES" ]
	check "$how (recovery): each frame counted once" -- counted_once "$T/s$how.json" "$FRAMES"
	check "$how (recovery): node3 gets no work once declared lost" -- no_work_after_lost "$log"
	echo "# $how (recovery): frames the fake Blender saved twice (wasted, counted once): $(saved_twice)"
	grep -E 'spoke again|from lost rank|late, from' "$log" | head -n 3 | diag
	end_mpirun "$how (recovery)"
	[ "$how" = link ] && ip -n "$SW" link set "${P}v3" up
	check "$how (recovery): no drender or Blender process left" -- gone_within 30 leftovers
	SUMMARY="$SUMMARY
# | $how | batch | exit ${rc0:-?}, $(frames_on_disk)/$FRAMES | $((FRAMES - $(frames_on_disk))) | $(saved_twice) saved twice, 0 counted twice | ${LOST_S:-n/a} s | $(leftovers | wc -l) |"
}
SUMMARY=""
for how in ${DEPLOY_NETNS_FAULTS-kill link flap stop}; do
	survive_host "$how"
	[ "$how" = link ] && reachable_again
done

# --- part 4: a host lost under --serve with two jobs queued ---------------------------------------
# Both jobs finish on the survivors, the service still answers /health and a third job, and
# /metrics counts the lost node.
mkdir -p "$T/blends"
cp "$T/scene.blend" "$T/blends/s.blend"
api() { # api METHOD PATH [BODY]: HTTP from inside head; CODE and $T/body
	CODE=$(on_head curl -s -X "$1" -o "$T/body" -w '%{http_code}' ${3:+-H 'Content-Type: application/json' --data-binary "$3"} \
		"http://127.0.0.1:$PORT$2")
}
api_field() { python3 -c 'import json,sys; print(eval(sys.argv[1], {"d": json.load(open(sys.argv[2]))}))' "$1" "$T/body" 2>/dev/null; }
job_done() { api GET "/status/$1" && [ "$(api_field 'd["state"]')" = "done" ]; }
srv_frames() { find "$T/srv" -name '*.png' -size +0 | wc -l; }
wait_until() { # wait_until SECONDS COMMAND...
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@"; do [ "$(date +%s)" -ge "$deadline" ] && return 1; sleep 0.2; done
}
rank0_in_head() { ip netns pids "$(ns_of head)" | while read -r p; do
	[ "$(cat "/proc/$p/comm" 2>/dev/null)" = drender ] && echo "$p"; done; }
serve_host() { # serve_host HOW (see take_host_away)
	local how=$1 log=$T/serve-$1.log t_stop
	PORT=$(free_port)
	rm -rf "$T/srv" && mkdir -p "$T/srv"
	COST=0.5
	FB_LOG=$T/serve-$how.fb
	: >"$FB_LOG"
	OUT_SAVED=$OUT
	OUT=$T/srv # frames_on_disk, for take_host_away's "under way"
	recovery_mpirun "$DRENDER" --blender "$FAKE" --serve --listen "127.0.0.1:$PORT" \
		--scene "$T/blends/s.blend" --blend-root "$T/blends" --output-root "$T/srv" \
		--node-timeout 5 >"$log" 2>&1
	wait_until 60 api GET /health
	check "serve $how: the service is up on head (4 ranks over 4 hosts)" -- [ "$CODE" = 200 ]
	api POST /render '{"from":1,"to":20,"output":"a"}'
	A=$(api_field 'd["jobId"]')
	api POST /render '{"from":21,"to":40,"output":"b"}'
	B=$(api_field 'd["jobId"]')
	take_host_away "$how" "$log"
	await_lost "$log" 60
	check "serve $how: node3 declared lost, its frames requeued (${LOST_S:-never} s after the fault)" -- \
		[ -n "$LOST_S" ]
	wait_until 120 job_done "$A"
	check "serve $how: job A ($A) finishes on the survivors" -- job_done "$A"
	wait_until 120 job_done "$B"
	check "serve $how: job B ($B) finishes on the survivors" -- job_done "$B"
	api GET /health
	check "serve $how: /health still answers 200 (got $CODE)" -- [ "$CODE" = 200 ]
	api POST /render '{"from":41,"to":46,"output":"c"}'
	C=$(api_field 'd["jobId"]')
	wait_until 60 job_done "$C"
	check "serve $how: a third job ($C) is accepted and done" -- job_done "$C"
	api GET /metrics
	check "serve $how: /metrics counts one lost node" -- \
		grep -q 'drender_render_nodes{state="lost"} 1' "$T/body" ||
		grep 'drender_render_nodes' "$T/body" | diag
	check "serve $how: 46 frames on disk ($(srv_frames))" -- [ "$(srv_frames)" -eq 46 ]
	echo "# serve $how: frames the fake Blender saved twice (wasted, counted once): $(saved_twice)"
	# Stop the service as a supervisor would: SIGTERM to mpirun, which passes it on to the ranks.
	t_stop=$SECONDS
	kill -TERM "$JOB_PID" 2>/dev/null
	gone_within 40 rank0_in_head
	SERVE_END="rank 0 ended $((SECONDS - t_stop)) s after SIGTERM"
	if ! gone_within "$FINAL_GRACE" mpirun_in_head; then
		kill -TERM "$JOB_PID" 2>/dev/null # Open MPI: a second signal ends mpirun at once
		SERVE_END="$SERVE_END; mpirun waited $FINAL_GRACE s more, got a second SIGTERM"
	fi
	wait_pid "$JOB_PID" 10 >/dev/null 2>&1
	[ $? = 124 ] && SERVE_END="$SERVE_END; then it had to be killed (SIGKILL)"
	case $how in link | flap) ip -n "$SW" link set "${P}v3" up ;; esac
	local left=0
	gone_within 30 leftovers || left=$(leftovers | wc -l)
	check "serve $how: no drender or Blender process left after the service is stopped ($left)" -- \
		[ "$left" = 0 ] ||
		for p in $(leftovers); do echo "leftover $p $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | cut -c1-150)"; done | diag
	echo "# serve $how: $SERVE_END"
	SUMMARY="$SUMMARY
# | $how | serve (2 jobs queued + 1) | 3 jobs done, /health 200, $(srv_frames)/46 | $((46 - $(srv_frames))) | $(saved_twice) saved twice | ${LOST_S:-n/a} s | $left |"
	OUT=$OUT_SAVED
}
for how in ${DEPLOY_NETNS_SERVE_FAULTS-link}; do
	serve_host "$how"
	case $how in link | flap) reachable_again ;; esac
done

echo "# | fault | mode | outcome | frames lost | rendered twice | fault -> requeue | leftovers |$SUMMARY"
echo "1..$T_N"
[ "$T_FAILED" -eq 0 ]
