#!/bin/bash
# Benchmark (prints tables, never passes or fails): staging and frames coming home over MPI, on
# network-namespace hosts with links shaped to a fixed bandwidth (tc tbf on each host's egress).
#
# Usage: bench/transfer.sh [--rate RATE] [--size MB] [--nodes LIST] [--frames N] [--pad BYTES]
#                          [--cost SECS] [--drender PATH]
#   --rate    every host's link (tc syntax, default 200mbit)
#   --size    the staged scene in MB (default 200)
#   --nodes   node counts to stage to (default 1,2,4,8; 1 is "one copy to one node")
#   --frames, --pad, --cost: the collect job (default 48 frames of 2 MB, 1 s each, on 4 nodes)
#   --big     bytes per frame of the big-frames job (default 100000000: 100 MB)
#   --reps    runs of each collect contender, alternating (default 3; the median is shown)
#   --disk    where the hosts' private directories live: tmpfs (default: one tmpfs each, as
#             hosts with disks of their own) or shared (this machine's one disk: 8 hosts'
#             fsyncs of the staged scene then queue on it, and measure the disk, not MPI)
# Table 1: staging time (the report's staging.seconds) per node count, and its ratio to one copy.
# Table 2: wall time of the same job with a shared output directory and with frames brought
# home (nodes do not see rank 0's directory), and the cost of bringing them home.
# Table 3: big frames (100 MB) coming home from every node at once: how long rank 0's loop was
# held up at most (the report's collect.max_turn_ms) and the longest task wait.
# Needs root (namespaces, mounts, tc), iproute2, unshare, Open MPI, python3.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
# shellcheck source=../tests/e2e/deploy-lib.bash
. "$root/tests/e2e/deploy-lib.bash"
RATE=200mbit SIZE=200 NODES=1,2,4,8 FRAMES=48 PAD=2000000 COST=1.0 CNODES=4 REPS=3 DISK=tmpfs
BIG=100000000
while [ $# -gt 0 ]; do
	case $1 in
	--rate) RATE=$2; shift ;;
	--size) SIZE=$2; shift ;;
	--nodes) NODES=$2; shift ;;
	--frames) FRAMES=$2; shift ;;
	--pad) PAD=$2; shift ;;
	--big) BIG=$2; shift ;;
	--cost) COST=$2; shift ;;
	--reps) REPS=$2; shift ;;
	--disk) DISK=$2; shift ;;
	--drender) DRENDER=$2; shift ;;
	*) echo "bench/transfer.sh: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || { echo "Transfer benchmark: skipped (needs root for namespaces)"; exit 0; }
for t in ip tc unshare mpirun python3; do
	command -v $t >/dev/null || { echo "Transfer benchmark: skipped ($t not installed)"; exit 0; }
done
max=$(echo "$NODES,$CNODES" | tr ',' '\n' | sort -n | tail -1)
netns_init drb
T=$(new_tmp -d bench-xfer) PRIV=$(new_tmp -d bench-xfer-hosts) A=$(new_tmp -d bench-xfer-agent)
trap 'netns_cleanup; umount "$PRIV"/* 2>/dev/null; rm -rf "$T" "$PRIV" "$A"' EXIT
trap 'exit 130' INT TERM
HOSTS="head"
for i in $(seq 1 "$max"); do HOSTS="$HOSTS node$i"; done
# shellcheck disable=SC2086
netns_cluster 10.80.0 "$A" $HOSTS >"$A/setup.log" 2>&1 ||
	{ echo "Transfer benchmark: FAILED: cannot build namespace hosts: $(tail -1 "$A/setup.log")"; exit 1; }
netns_private_agent "$A/private" "$A/nsmap" "$T" "$PRIV"
# the same agent without private directories: every host sees rank 0's (a shared directory)
sed 's/^if \[ "\$host" = head \]; then$/if true; then/' "$A/private" >"$A/shared"
chmod +x "$A/shared"
for h in $HOSTS; do
	netns_shape "$h" "$RATE"
	mkdir -p "$PRIV/$h"
	[ "$DISK" = tmpfs ] && [ "$h" != head ] && mount -t tmpfs -o size=2g "bench-$h" "$PRIV/$h"
done
mpi_as_root
# hostfile: head first, then one slot per node
{ echo "head slots=1"; for i in $(seq 1 "$max"); do echo "node$i slots=1"; done; } >"$A/hostfile"
args() { # args AGENT
	echo "--hostfile $A/hostfile --mca plm_rsh_agent $1 --mca plm_rsh_no_tree_spawn 1
 --mca btl self,vader,tcp --mca btl_tcp_if_include 10.80.0.0/24 --mca oob_tcp_if_include 10.80.0.0/24"
}
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }

# --- staging ------------------------------------------------------------------------------------
{ printf 'BLENDER-v304 benchmark scene\n'; head -c "$((SIZE * 1000000))" /dev/urandom; } >"$T/big.blend"
echo "Staging a $SIZE MB scene over $RATE links (chain of nodes forwarding 1 MiB chunks; node disks: $DISK)"
printf '  %-6s %10s %10s %8s\n' nodes seconds MB/s ratio
one=""
for n in ${NODES//,/ }; do
	rm -rf "$PRIV"/*/cache
	# shellcheck disable=SC2046
	as_host head timeout 600 mpirun $(args "$A/private") -np $((n + 1)) "$DRENDER" \
		--blender "$FAKE" --cache-dir "$T/cache" -o "$T/out-s$n/f_####" \
		--report "$T/stage$n.json" "$T/big.blend" 1 1 >"$T/stage$n.log" 2>&1
	s=$(jget "$T/stage$n.json" 'd["staging"]["seconds"] if d["staging"]["nodes_staged"] == '"$n"' else ""')
	if [ -z "$s" ]; then
		printf '  %-6s %10s\n' "$n" FAILED
		continue
	fi
	[ -z "$one" ] && [ "$n" = 1 ] && one=$s
	printf '  %-6s %10.2f %10.1f %8s\n' "$n" "$s" "$(echo "$SIZE / $s" | bc -l)" \
		"$([ -n "$one" ] && printf '%.2fx' "$(echo "$s / $one" | bc -l)" || echo -)"
done

# --- frames coming home ---------------------------------------------------------------------------
echo
echo "Frames coming home: $FRAMES frames of $((PAD / 1000000)) MB, $COST s each, on $CNODES nodes over $RATE links"
printf '  %-26s %10s   %s\n' "output directory" "median s" "runs"
declare -A wall runs
printf 'BLENDER-v304 benchmark scene\n' >"$A/small.blend" # every host sees it: no staging here
for rep in $(seq 1 "$REPS"); do
	for mode in shared collect; do
		agent=$A/shared
		[ $mode = collect ] && agent=$A/private
		rm -rf "$T/out-c" "$PRIV"/*/out-c
		mkdir -p "$T/out-c"
		t0=$(date +%s.%N)
		# shellcheck disable=SC2046
		FAKE_BLENDER_PNG_PAD=$PAD FAKE_BLENDER_COST=$COST as_host head timeout 600 mpirun \
			$(args "$agent") -np $((CNODES + 1)) -x FAKE_BLENDER_PNG_PAD -x FAKE_BLENDER_COST \
			"$DRENDER" --blender "$FAKE" --stage never -o "$T/out-c/f_####" \
			--report "$T/c-$mode.json" "$A/small.blend" 1 "$FRAMES" >"$T/c-$mode.log" 2>&1
		rc=$?
		t1=$(date +%s.%N)
		got=$(find "$T/out-c" -name 'f_*.png' | wc -l)
		homes=$(jget "$T/c-$mode.json" 'd.get("collect", {}).get("frames", 0)')
		if [ $rc -ne 0 ] || [ "$got" -ne "$FRAMES" ]; then
			runs[$mode]="${runs[$mode]:-} FAILED(exit $rc, $got frames)"
			continue
		fi
		[ $mode = collect ] && [ "$homes" != "$FRAMES" ] && runs[$mode]="${runs[$mode]:-} (only $homes came home)"
		[ $mode = collect ] && turns="${turns:-} $(jget "$T/c-$mode.json" 'round(d["collect"]["max_turn_ms"], 1)')"
		runs[$mode]="${runs[$mode]:-} $(printf '%.2f' "$(echo "$t1 - $t0" | bc -l)")"
	done
done
for mode in shared collect; do
	wall[$mode]=$(echo "${runs[$mode]:-}" | tr ' ' '\n' | grep -E '^[0-9.]+$' | sort -n |
		awk '{ v[NR] = $1 } END { if (NR) print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }')
	printf '  %-26s %10s  %s\n' "$mode" "${wall[$mode]:-FAILED}" "${runs[$mode]:-}"
done
if [ -n "${wall[shared]:-}" ] && [ -n "${wall[collect]:-}" ]; then
	printf '  cost of bringing frames home: %+.1f%%\n' \
		"$(echo "100 * (${wall[collect]} - ${wall[shared]}) / ${wall[shared]}" | bc -l)"
fi
echo "  rank 0's loop held up by frames coming home, at most (ms, per run):${turns:-}"

# --- 3. big frames coming home do not hold up dispatch ------------------------------------
# BIG-byte frames (default 100 MB) from every node at once: the longest rank 0's loop was held
# up receiving them (collect.max_turn_ms) and the longest a node waited for its next task.
echo
echo "Frames of $((BIG / 1000000)) MB coming home from $CNODES nodes at once ($RATE links)"
rm -rf "$T/out-c" "$PRIV"/*/out-c
mkdir -p "$T/out-c"
# shellcheck disable=SC2046
FAKE_BLENDER_PNG_PAD=$BIG FAKE_BLENDER_COST=0.5 as_host head timeout 900 mpirun \
	$(args "$A/private") -np $((CNODES + 1)) -x FAKE_BLENDER_PNG_PAD -x FAKE_BLENDER_COST \
	"$DRENDER" --blender "$FAKE" --stage never -o "$T/out-c/f_####" \
	--report "$T/big.json" "$A/small.blend" 1 $((2 * CNODES)) >"$T/big.log" 2>&1
rc=$?
if [ $rc -ne 0 ]; then
	echo "  FAILED (exit $rc): $(tail -n 1 "$T/big.log")"
else
	jget "$T/big.json" '"  %d frames, %.0f MB home in %.1f s of transfers; rank 0 held up %.1f ms at most; longest task wait %.1f ms" % (d["collect"]["frames"], d["collect"]["bytes"] / 1e6, d["collect"]["seconds"], d["collect"]["max_turn_ms"], 1000 * max(f.get("dispatch_seconds", 0) for f in d["frames"]))'
fi
