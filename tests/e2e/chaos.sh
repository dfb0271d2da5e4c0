#!/bin/bash
# End-to-end (TAP): a short chaos run (bench/chaos.sh): 3 jobs of 12 frames on three
# network-namespace render hosts under mpirun --enable-recovery, one fault of each kind that
# leaves the launcher's own connections alone taken in turn (a render rank SIGKILLed, a host's
# processes SIGSTOPped then continued, a host's link flapping), on a random host at a random
# point (the seed is printed). The host must be declared lost, each job's frames identical to a clean run's (names and
# sha256), no frame counted twice, nothing left running. The full run (20 x 40, all five faults)
# is `bench/chaos.sh`. Needs root; skipped without network namespaces.
set -u
# shellcheck source-path=SCRIPTDIR source=deploy-lib.bash
. "$(dirname "$0")/deploy-lib.bash"
skip_if_fast_only
need_root "network namespaces need root"
need_tools ip unshare mpirun python3
check_drender
out=$(new_tmp chaos-out)
CHAOS_CYCLE=1 CHAOS_FAULTS="kill stop flap" CHAOS_GRACE=10 CHAOS_COST=1 \
	"$TOP/bench/chaos.sh" 3 12 >"$out" 2>&1
rc=$?
if [ "$rc" -eq 2 ] && grep -q 'cannot create network namespaces' "$out"; then
	rm -f "$out"
	echo "1..0 # SKIP cannot create network namespaces here"
	exit 0
fi
grep '^#' "$out"
rows=0
# job_ok LOST OUTPUT COUNTED LEFT: the host was declared lost, and the rest as the header says
job_ok() { [ "$1" != n/a ] && [ "$2" = identical ] && [ "$3" = once ] && [ "$4" = 0 ]; }
while read -r job fault host _ lost rank0 same counted twice _ left _; do
	rows=$((rows + 1))
	check "job $job ($fault on $host): declared lost and requeued after ${lost} s, rank 0 exit $rank0, output $same, counted $counted, $twice saved twice, $left left" -- \
		job_ok "$lost" "$same" "$counted" "$left"
done < <(grep -E '^  [0-9]+ +\|' "$out" | tr -d '|')
check "chaos: 3 job rows printed (got $rows)" -- [ "$rows" -eq 3 ]
check "chaos: bench/chaos.sh exits 0 (got $rc)" -- [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || grep -v '^#' "$out" | tail -n 20 | diag
rm -f "$out"
echo "1..$T_N"
[ "$T_FAILED" -eq 0 ]
