#!/usr/bin/env bash
# Run drender's benchmarks (real Blender, scheduler at scale, tail); print tables, write bench/out/.
#
# Usage: bench/run.sh [--quick] [--only real,scale,tail,still,transfer] [--reps N]
#                     [--drender PATH] [--blender PATH] [--no-plot]
#   --quick     smoke run: few frames, one repetition (about a minute; numbers are not meaningful)
#   --only      run some of the benchmarks (comma-separated: real, scale, tail, still, transfer;
#               still is bench/still.sh, the split-still overhead; transfer is bench/transfer.sh,
#               staging and frames coming home on namespace hosts)
#   --reps N    repetitions of every contender (default 3; contenders alternate within each)
#   --drender   the binary to measure (default ./drender; a copy is taken at the start, so a
#               rebuild during the run does not change what is measured)
#   --blender   Blender for the real benchmark (default $DRENDER_BLENDER, then blender on PATH)
#   --no-plot   skip the gnuplot efficiency plot
# Output: tables on stdout (also bench/out/results.txt), raw data and medians in
# bench/out/{real,scale,tail}.json, bench/out/efficiency.png (needs gnuplot). Benchmarks print
# figures, they never pass or fail; a contender that fails shows as FAILED in its table.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=$here/out
quick=0
only=real,scale,tail,still,transfer
reps=3
drender=$root/drender
blender=${DRENDER_BLENDER:-blender}
plot=1

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case $1 in
	--quick) quick=1 ;;
	--only) only=${2:?--only needs a value}; shift ;;
	--only=*) only=${1#--only=} ;;
	--reps) reps=${2:?--reps needs a value}; shift ;;
	--reps=*) reps=${1#--reps=} ;;
	--drender) drender=${2:?--drender needs a value}; shift ;;
	--blender) blender=${2:?--blender needs a value}; shift ;;
	--no-plot) plot=0 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench/run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
case $reps in '' | *[!0-9]* | 0) echo "bench/run.sh: --reps needs a positive number" >&2; exit 2 ;; esac
for b in ${only//,/ }; do
	case $b in real | scale | tail | still | transfer) ;; *) echo "bench/run.sh: unknown benchmark '$b'" >&2; exit 2 ;; esac
done
if [ ! -x "$drender" ]; then
	echo "bench/run.sh: $drender not found; build it with 'make'" >&2
	exit 2
fi
for tool in mpirun python3; do
	command -v $tool >/dev/null || { echo "bench/run.sh: $tool not found (scripts/install-deps.sh)" >&2; exit 2; }
done

mkdir -p "$out"
snap=$(mktemp -d /tmp/drender-bench-bin.XXXXXX)
cleanup() { rm -rf "$snap"; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM
cp "$drender" "$snap/drender"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export PYTHONUNBUFFERED=1

py() { python3 "$here/bench.py" "$@" --drender "$snap/drender" --reps "$r"; }
results=$out/results.txt
{
	echo "drender benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), $("$snap/drender" --version 2>/dev/null | head -1)"
	echo "binary: $drender (sha256 $(sha256sum "$snap/drender" | cut -c1-12), built $(date -u -r "$drender" '+%Y-%m-%d %H:%M UTC'), tree at $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet HEAD 2>/dev/null || echo ' + uncommitted changes'))"
	echo "machine: $(nproc) CPUs usable, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo) RAM, load before: $(cut -d' ' -f1-3 /proc/loadavg)"
	if [ $quick = 1 ]; then echo "command: bench/run.sh --quick --only $only (one repetition)"; else echo "command: bench/run.sh --only $only --reps $reps"; fi
	echo
} | tee "$results"

status=0
for b in ${only//,/ }; do
	r=$reps
	case $b in
	real)
		if ! command -v "$blender" >/dev/null; then
			echo "Real Blender benchmark: FAILED: Blender '$blender' not found" | tee -a "$results"
			continue
		fi
		if [ $quick = 1 ]; then r=1; set -- --first 1 --last 4; else set --; fi
		py real --blender "$blender" "$@" ;;
	scale)
		if [ $quick = 1 ]; then r=1; set -- --frames 300 --nodes 4,16,64; else set --; fi
		py scale "$@" ;;
	tail)
		if [ $quick = 1 ]; then r=1; set -- --cost 0.1; else set --; fi
		py tail "$@" ;;
	still)
		if [ $quick = 1 ]; then set -- --quick; else set -- --reps "$r"; fi
		"$here/still.sh" --drender "$snap/drender" --blender "$blender" "$@" ;;
	transfer) # staging and frames coming home on namespace hosts (bench/transfer.sh)
		if [ $quick = 1 ]; then set -- --size 20 --nodes 1,2 --frames 4; else set --; fi
		"$here/transfer.sh" --drender "$snap/drender" "$@" ;;
	esac 2> >(sed -u 's/^/  progress: /' >&2) | tee -a "$results"
	[ "${PIPESTATUS[0]}" = 0 ] || status=1
done

if [ $plot = 1 ] && [ -s "$out/efficiency.dat" ]; then
	if command -v gnuplot >/dev/null; then
		if gnuplot -e "datafile='$out/efficiency.dat'; outfile='$out/efficiency.png'" \
			"$here/efficiency.gp" 2>"$snap/gnuplot.err"; then
			echo "plot: $out/efficiency.png" | tee -a "$results"
		else
			echo "plot: gnuplot failed: $(head -3 "$snap/gnuplot.err")" | tee -a "$results"
		fi
	else
		echo "plot: skipped, gnuplot not installed (apt-get install gnuplot-nox)" | tee -a "$results"
	fi
fi
echo "tables: $results; data: $out/*.json"
exit $status
