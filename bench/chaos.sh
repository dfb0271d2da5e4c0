#!/bin/bash
# shellcheck disable=SC2046,SC2054 # PID lists split on purpose; commas are MCA values
# bench/chaos.sh: the chaos run. JOBS batch jobs of FRAMES frames each on three network-namespace
# render hosts (node1..node3; rank 0 on "head"), with the fake Blender, under
# mpirun --enable-recovery launched through scripts/drender-rsh, and one random fault injected in
# each job at a random point (after 2..FRAMES/3 frames) on a random host:
#   kill      the host's drender rank SIGKILLed (its Blender dies with it)
#   hostkill  every process on the host SIGKILLed (orted, rank, Blender: a crashed host)
#   stop      every process on the host SIGSTOPped, continued once it is declared lost (a frozen VM)
#   link      the host's link down for the rest of the job
#   flap      the host's link down, and up again once it is declared lost
# Each job's output set must be identical to a clean run's (same file names, same sha256), each
# frame counted once (the report), and nothing may be left running afterwards. A job whose
# rank 0 does not end with exit 0 is re-run once (resume) and says so. Frames the fake Blender
# saved twice (its log) are printed: wasted work after a stop or a cut link, never counted twice.
#
# Usage: bench/chaos.sh [JOBS [FRAMES]]     (default 20 40)
#   CHAOS_SEED=N     the seed (default: the clock); printed, and it reproduces the faults' draw
#   CHAOS_FAULTS="kill stop ..."   the faults to draw from (default: all five)
#   CHAOS_COST=S     fake Blender seconds per frame (default 0.5: the job must outlast
#                    --node-timeout 3 after the fault, so that the requeue is seen)
#   CHAOS_CYCLE=1    take the faults in turn instead of drawing them (hosts and points still drawn)
#   CHAOS_GRACE=S    how long mpirun may wait after rank 0's report before it is ended (default 20)
# Prints one table row per job and a total; exits 1 if any job's output differs from the clean
# run, a frame was counted twice, or something was left running (so that a short run can serve
# as a test: tests/e2e/chaos.sh). Needs root, iproute2, unshare, Open MPI, python3.
set -u
# shellcheck source-path=SCRIPTDIR source=../tests/e2e/deploy-lib.bash
. "$(dirname "$0")/../tests/e2e/deploy-lib.bash"
JOBS=${1:-20}
FRAMES=${2:-40}
SEED=${CHAOS_SEED:-$(date +%s)}
read -ra FAULTS <<<"${CHAOS_FAULTS:-kill hostkill stop link flap}"
COST=${CHAOS_COST:-0.5}
TIMEOUT=3 # --node-timeout
GRACE=${CHAOS_GRACE:-20}
[ "$FRAMES" -ge 9 ] || { echo "chaos: FRAMES must be at least 9" >&2; exit 2; }

[ "$(id -u)" -eq 0 ] || { echo "chaos: needs root (network namespaces)" >&2; exit 2; }
for t in ip unshare mpirun python3; do
	command -v "$t" >/dev/null || { echo "chaos: $t not installed" >&2; exit 2; }
done
[ -x "$DRENDER" ] || { echo "chaos: no drender binary at $DRENDER (run make)" >&2; exit 2; }

netns_init drc
T=$(new_tmp -d chaos)
BG=""
cleanup() {
	local pid
	for pid in $BG; do kill -9 "$pid" 2>/dev/null; done
	netns_cleanup
	if [ -n "${CHAOS_KEEP:-}" ]; then echo "# kept $T"; else rm -rf "$T"; fi
}
on_exit cleanup
HOSTS="head node1 node2 node3"
# shellcheck disable=SC2086
if ! netns_cluster 10.78.0 "$T" $HOSTS >"$T/setup.log" 2>&1; then
	echo "chaos: cannot create network namespaces here: $(tail -n 1 "$T/setup.log")" >&2
	exit 2
fi
netns_rsh_agent "$T/agent" "$T/nsmap"
printf 'head slots=1\nnode1 slots=1\nnode2 slots=1\nnode3 slots=1\n' >"$T/hostfile"
printf 'BLENDER-v300 fake scene for the chaos run\n' >"$T/scene.blend"
mpi_as_root
export OMPI_MCA_plm_rsh_agent="$ROOT/scripts/drender-rsh --agent=$T/agent"
MPI=(--hostfile "$T/hostfile" --mca btl self,vader,tcp --mca btl_tcp_if_include 10.78.0.0/24
	--mca oob_tcp_if_include 10.78.0.0/24 --mca oob_tcp_keepalive_time 10
	--mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 5)

RANDOM=$SEED
echo "# chaos: $JOBS jobs x $FRAMES frames, 3 render hosts, faults: ${FAULTS[*]}, seed $SEED"
echo "# reproduce: CHAOS_SEED=$SEED${CHAOS_FAULTS:+ CHAOS_FAULTS=\"$CHAOS_FAULTS\"} bench/chaos.sh $JOBS $FRAMES"

mpirun_in_head() { ip netns pids "$(ns_of head)" | while read -r p; do
	[ "$(cat "/proc/$p/comm" 2>/dev/null)" = mpirun ] && echo "$p"; done; }
rank_in() { # rank_in HOST: the drender process in HOST's namespace
	ip netns pids "$(ns_of "$1")" | while read -r p; do
		[ "$(cat "/proc/$p/comm" 2>/dev/null)" = drender ] && echo "$p"; done
}
frames_in() { find "$1" -maxdepth 1 -name 'frame_*.png' -size +0 2>/dev/null | wc -l; }
manifest() { # manifest DIR: "name sha256" of each frame, sorted
	(cd "$1" && find . -maxdepth 1 -name 'frame_*.png' -printf '%f\n' | sort | xargs -r sha256sum |
		awk '{print $2, $1}')
}
now() { date +%s.%N; }
since() { python3 -c "print(round($(now) - $1, 1))"; }
# run_job NAME OUTDIR: rank 0 in head, one render rank per node, in the background (JOB_PID)
run_job() {
	# shellcheck disable=SC2016 # (not through as_host: JOB_PID is then mpirun's own PID)
	FAKE_BLENDER_COST=$COST FAKE_BLENDER_LOG=$T/$1.fb \
		ip netns exec "$(ns_of head)" unshare --uts /bin/sh -c 'hostname head && exec "$@"' sh \
		mpirun --enable-recovery "${MPI[@]}" -np 4 -x FAKE_BLENDER_COST -x FAKE_BLENDER_LOG \
		"$DRENDER" --blender "$FAKE" -o "$2/frame_####" --retries 2 --node-timeout $TIMEOUT \
		--report "$T/$1.json" "$T/scene.blend" 1 "$FRAMES" >"$T/$1.log" 2>&1 &
	JOB_PID=$!
	BG="$BG $JOB_PID"
}
# finish_job NAME: wait for rank 0's report (at most 300 s), give mpirun GRACE s more, then end it
finish_job() {
	local deadline=$(($(date +%s) + 300))
	until [ -s "$T/$1.json" ] || ! kill -0 "$JOB_PID" 2>/dev/null ||
		[ "$(date +%s)" -ge "$deadline" ]; do sleep 0.2; done
	deadline=$(($(date +%s) + GRACE))
	while kill -0 "$JOB_PID" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.3; done
	MPIRUN_ENDED=self
	if kill -0 "$JOB_PID" 2>/dev/null; then
		MPIRUN_ENDED=TERM
		# shellcheck disable=SC2046
		kill -TERM "$JOB_PID" 2>/dev/null
		gone_within 10 mpirun_in_head || kill -TERM "$JOB_PID" 2>/dev/null # a second one
		wait_pid "$JOB_PID" 20 >/dev/null 2>&1
		[ $? = 124 ] && MPIRUN_ENDED=KILL
	else
		wait "$JOB_PID" 2>/dev/null
	fi
	RC0=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['exit_code'])" \
		"$T/$1.json" 2>/dev/null || echo none)
}
counted_once() { # counted_once JSON: each requested frame listed once, none twice
	python3 - "$1" "$FRAMES" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
fr = [f["frame"] for f in r["frames"]]
sys.exit(0 if len(fr) == len(set(fr)) == int(sys.argv[2]) else 1)
PY
}
saved_twice() { awk '$1 == "saved" {print $3}' "$@" 2>/dev/null | sort | uniq -d | wc -l; }
# settle: wait until nothing of ours runs in the namespaces (30 s), then kill what is left;
# LEFT = what was left at the deadline
settle() {
	LEFT=0
	if ! gone_within 30 netns_pids; then
		LEFT=$(netns_pids | wc -l)
		# shellcheck disable=SC2046
		kill -9 $(netns_pids) 2>/dev/null
		gone_within 10 netns_pids
	fi
}
reachable() { # the launcher reaches every host again (after a link came back)
	local i
	for i in $(seq 1 20); do
		as_host head timeout 15 mpirun "${MPI[@]}" -np 4 hostname >"$T/reach.log" 2>&1 && return 0
		sleep 1
	done
	return 1
}

# --- the clean run: the reference output set ----------------------------------------------------
t=$(now)
run_job clean "$T/clean"
finish_job clean
settle
if [ "$RC0" != 0 ] || [ "$(frames_in "$T/clean")" -ne "$FRAMES" ]; then
	echo "chaos: the clean run failed (rank 0 exit $RC0, $(frames_in "$T/clean") frames)" >&2
	tail -n 20 "$T/clean.log" >&2
	exit 1
fi
manifest "$T/clean" >"$T/clean.manifest"
echo "# clean run: $FRAMES frames in $(since "$t") s, $(saved_twice "$T/clean.fb") saved twice"

# --- the jobs ----------------------------------------------------------------------------------------
printf '# %-3s | %-8s | %-5s | %-5s | %-6s | %-8s | %-12s | %-8s | %-7s | %-6s | %-5s | %s\n' \
	job fault host after lost_s rank0 output counted saved2x mpirun left wall_s
bad=0
declare -A by_fault_n by_fault_ok by_fault_lost by_fault_twice
for i in $(seq 1 "$JOBS"); do
	fault=${FAULTS[RANDOM % ${#FAULTS[@]}]}
	[ -n "${CHAOS_CYCLE:-}" ] && fault=${FAULTS[(i - 1) % ${#FAULTS[@]}]}
	host=node$((RANDOM % 3 + 1))
	after=$((RANDOM % (FRAMES / 3 - 1) + 2))
	name=job$i
	out=$T/$name
	t=$(now)
	run_job "$name" "$out"
	deadline=$(($(date +%s) + 120))
	while [ "$(frames_in "$out")" -lt "$after" ] && kill -0 "$JOB_PID" 2>/dev/null &&
		[ "$(date +%s)" -lt "$deadline" ]; do sleep 0.05; done
	ns=$(ns_of "$host")
	veth=${P}v${host#node}
	t0=$(now)
	case $fault in
	kill) kill -9 $(rank_in "$host") 2>/dev/null ;;
	hostkill) kill -9 $(ip netns pids "$ns") 2>/dev/null ;;
	stop) kill -STOP $(ip netns pids "$ns") 2>/dev/null ;;
	link | flap) ip -n "$SW" link set "$veth" down ;;
	esac
	lost_s=n/a
	deadline=$(($(date +%s) + 60))
	until grep -q "($host) is lost" "$T/$name.log" || [ -s "$T/$name.json" ] ||
		[ "$(date +%s)" -ge "$deadline" ]; do sleep 0.05; done
	grep -q "($host) is lost" "$T/$name.log" && lost_s=$(since "$t0")
	case $fault in
	stop) kill -CONT $(ip netns pids "$ns") 2>/dev/null ;;
	flap) ip -n "$SW" link set "$veth" up ;;
	esac
	finish_job "$name"
	rc0=$RC0
	[ "$fault" = link ] && ip -n "$SW" link set "$veth" up
	settle
	left=$LEFT
	case $fault in link | flap) reachable || echo "# job $i: $host not reachable again" ;; esac
	if [ "$rc0" != 0 ]; then # resume: re-run the same command, as a user would
		run_job "$name-rerun" "$out"
		finish_job "$name-rerun"
		settle
		left=$((left + LEFT))
		rc0="$rc0>rerun:$RC0"
	fi
	manifest "$out" >"$T/$name.manifest"
	if cmp -s "$T/clean.manifest" "$T/$name.manifest"; then same=identical; else
		same="DIFFERS($(frames_in "$out"))"
	fi
	json=$T/$name.json
	[ -s "$T/$name-rerun.json" ] && json=$T/$name-rerun.json
	counted=once
	if [ -s "$T/$name-rerun.json" ]; then counted="resumed"; elif ! counted_once "$json"; then
		counted=TWICE
	fi
	twice=$(saved_twice "$T/$name.fb" "$T/$name-rerun.fb")
	printf '  %-3s | %-8s | %-5s | %-5s | %-6s | %-8s | %-12s | %-8s | %-7s | %-6s | %-5s | %s\n' \
		"$i" "$fault" "$host" "$after" "$lost_s" "$rc0" "$same" "$counted" "$twice" \
		"$MPIRUN_ENDED" "$left" "$(since "$t")"
	ok=1
	{ [ "$same" = identical ] && [ "$counted" != TWICE ] && [ "$left" = 0 ]; } || ok=0
	[ "$ok" = 1 ] || bad=$((bad + 1))
	[ "$ok" = 1 ] || grep -v 'done by rank' "$T/$name.log" | tail -n 15 | sed 's/^/#   /'
	by_fault_n[$fault]=$((${by_fault_n[$fault]:-0} + 1))
	by_fault_ok[$fault]=$((${by_fault_ok[$fault]:-0} + ok))
	by_fault_twice[$fault]=$((${by_fault_twice[$fault]:-0} + twice))
	[ "$lost_s" != n/a ] && by_fault_lost[$fault]="${by_fault_lost[$fault]:-} $lost_s"
done

echo "# per fault: jobs, output identical to the clean run, frames saved twice (wasted), fault -> requeue (s, median)"
for f in "${FAULTS[@]}"; do
	[ -n "${by_fault_n[$f]:-}" ] || continue
	med=$(echo "${by_fault_lost[$f]:-}" | tr ' ' '\n' | grep . | sort -n |
		awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "n/a"}')
	printf '#   %-8s %2d jobs, %2d identical, %3d saved twice, requeue after %s s\n' "$f" \
		"${by_fault_n[$f]}" "${by_fault_ok[$f]}" "${by_fault_twice[$f]}" "$med"
done
echo "# chaos: $((JOBS - bad)) of $JOBS jobs identical to the clean run, none counted twice, nothing left (seed $SEED)"
[ "$bad" -eq 0 ]
