#!/bin/sh
# Rank 0's dispatch ceiling (issue 15): the real rank-0 program (build/dr-ceiling links
# dr_service, dr_orch, dr_dispatch, dr_sched, dr_msg) against render nodes that answer every task
# at once, with no Blender, over MPI on this machine; with and without tail control. Prints one
# CEILING line per run (tasks/s through rank 0, rank 0's CPU per task from getrusage) and writes
# them to bench/out/ceiling.txt. Usage: bench/dispatch-ceiling.sh [RANKS...] (default 2 3 5 9 17)
set -eu
make -s build/dr-ceiling >/dev/null
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_tcp_if_include=lo
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'BLENDER-v300' > "$tmp/scene.blend"
mkdir -p bench/out
out=bench/out/ceiling.txt
: > "$out"
for np in ${*:-2 3 5 9 17}; do
	# a few seconds per run: round trips bound small farms, rank 0's CPU large ones
	frames=$((np < 5 ? 5000 : np < 9 ? 20000 : 100000))
	for tail in "" --no-speculate; do
		rm -rf "$tmp/out"
		timeout 170 mpirun --oversubscribe -np "$np" build/dr-ceiling -q --node-timeout 600 \
			$tail -o "$tmp/out/f_######" "$tmp/scene.blend" 1 "$frames" 2>&1 |
			grep '^CEILING' | tee -a "$out"
	done
done
