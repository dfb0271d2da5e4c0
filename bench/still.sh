#!/usr/bin/env bash
# Split-still overhead (issue 16): one 2-thread render of a still against the same still split by
# sample ranges over 2 one-thread render nodes, side by side, with where the split's time goes.
#
# Usage: bench/still.sh [--reps N] [--res WxH] [--samples S] [--split N] [--drender PATH]
#                       [--blender PATH] [--quick]
#   --reps N     repetitions; contenders alternate within each (default 3)
#   --res WxH    the still's size (default 480x270: tens of seconds single on one 2-CPU machine)
#   --samples S  Cycles samples (default 256; ranges are exact up to 256, see tests/e2e/still.sh)
#   --split N    sample ranges (default 4 = --split auto on 2 render nodes)
#   --drender    the binary (default ./drender, copied at the start)
#   --blender    Blender (default $DRENDER_BLENDER, then blender on PATH)
#   --quick      96x54, 64 samples, one repetition (a smoke run; figures mean nothing)
# Contenders: "blender" (blender -b -t 2 -f, the floor), "single" (drender alone, -t 2) and
# "split" (mpirun -np 3 drender --still --split N -t 1: 2 render nodes of 1 thread; the merge in
# the merging node's warm Blender) and "split-cold" (the same, the merge in a Blender of its own,
# DRENDER_COLD_MERGE=1: what a warm merge saves). The split's
# time is cut from its --report: start-up until the first range began, the ranges, then the
# merge (the node's Blender, and the wall time until rank 0 had validated the still).
# Prints a table (also bench/out/still.txt) and writes bench/out/still.json. Never pass/fail.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
out=$here/out
reps=3 res=480x270 samples=256 split=4
drender=$root/drender
blender=${DRENDER_BLENDER:-blender}

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
	case $1 in
	--reps) reps=${2:?}; shift ;;
	--res) res=${2:?}; shift ;;
	--samples) samples=${2:?}; shift ;;
	--split) split=${2:?}; shift ;;
	--drender) drender=${2:?}; shift ;;
	--blender) blender=${2:?}; shift ;;
	--quick) reps=1 res=96x54 samples=64 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "bench/still.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
	esac
	shift
done
case $reps$samples$split in *[!0-9]*) echo "bench/still.sh: --reps, --samples and --split take numbers" >&2; exit 2 ;; esac
case $res in [0-9]*x[0-9]*) ;; *) echo "bench/still.sh: --res wants WxH" >&2; exit 2 ;; esac
for tool in "$blender" mpirun python3; do
	command -v "$tool" >/dev/null || { echo "bench/still.sh: $tool not found" >&2; exit 2; }
done
[ -x "$drender" ] || { echo "bench/still.sh: $drender not found; build it with 'make'" >&2; exit 2; }

mkdir -p "$out"
work=$(mktemp -d /tmp/drender-bench-still.XXXXXX)
trap 'rm -rf "$work"' EXIT
trap 'rm -rf "$work"; exit 130' INT TERM
cp "$drender" "$work/drender"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
cd "$work" || exit 1

w=${res%x*} h=${res#*x}
"$blender" -b --factory-startup --python-exit-code 1 --python "$root/tests/fixtures/make_still.py" \
	-- "$work/c.blend" "$work/e.blend" >make.log 2>&1 &&
	"$blender" -b "$work/c.blend" --python-exit-code 1 --python-expr "import bpy
s = bpy.context.scene
s.render.resolution_x, s.render.resolution_y, s.render.resolution_percentage = $w, $h, 100
s.cycles.samples = $samples
bpy.ops.wm.save_mainfile()" >>make.log 2>&1 ||
	{ echo "bench/still.sh: cannot build the scene:" >&2; tail -5 make.log >&2; exit 1; }

now() { date +%s.%N; }
runs=$work/runs.jsonl
run() { # run NAME REP COMMAND...: time it, append a JSON line (env assignments before "run" pass)
	local name=$1 rep=$2 t0 t1 rc
	shift 2
	rm -rf "o_$name"
	t0=$(now)
	# CPU seconds of the whole process tree (every process reaped on the way counts): the work
	# done, which the shared machine's load changes far less than the wall time
	python3 -c 'import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:])
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%.2f\n" % (u.ru_utime + u.ru_stime))
sys.exit(rc)' "$name.cpu" "$@" >"$name.out" 2>"$name.err"
	rc=$?
	t1=$(now)
	printf '{"name": "%s", "rep": %d, "rc": %d, "wall": %s, "cpu": %s, "load": %s, "report": "%s"}\n' \
		"$name" "$rep" "$rc" "$(echo "$t1 - $t0" | bc)" "$(cat "$name.cpu" 2>/dev/null || echo null)" \
		"$(cut -d' ' -f1 /proc/loadavg)" "$([ -s "$name.json" ] && echo "$work/$name.json")" >>"$runs"
	echo "  $name rep $rep: exit $rc, $(echo "$t1 - $t0" | bc) s, CPU $(cat "$name.cpu" 2>/dev/null) s" >&2
}
for rep in $(seq 1 "$reps"); do
	rm -f ./*.json
	run blender "$rep" "$blender" -b c.blend -t 2 -o "$work/o_blender/s_####" -F OPEN_EXR -f 3
	run single "$rep" ./drender c.blend 3 3 -t 2 -F OPEN_EXR -o o_single/s_#### -q \
		--report single.json
	run split "$rep" mpirun --oversubscribe -np 3 ./drender c.blend --still 3 --split "$split" \
		-t 1 -F OPEN_EXR -o o_split/s_#### -q --report split.json
	DRENDER_COLD_MERGE=1 run split-cold "$rep" mpirun --oversubscribe -np 3 ./drender c.blend \
		--still 3 --split "$split" -t 1 -F OPEN_EXR -o o_split-cold/s_#### -q \
		--report split-cold.json
	python3 - "$runs" "$rep" <<'EOF'
import json, sys
# keep this repetition's split report figures in the run line (the file is replaced next time)
runs, rep = sys.argv[1], int(sys.argv[2])
lines = [json.loads(l) for l in open(runs)]
for l in lines:
    if l["rep"] == rep and l.get("report") and "detail" not in l:
        try:
            l["detail"] = json.load(open(l["report"]))
        except (OSError, ValueError):
            l["detail"] = None
open(runs, "w").write("".join(json.dumps(l) + "\n" for l in lines))
EOF
done

python3 - "$runs" "$out/still.json" "$res" "$samples" "$split" "$reps" <<'EOF' | tee "$out/still.txt"
import json, statistics, sys
runs_path, out_path, res, samples, split, reps = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_path)]
med = lambda xs: statistics.median(xs) if xs else float("nan")
def walls(name):
    return [r["wall"] for r in runs if r["name"] == name and r["rc"] == 0]
def cut(r):
    """start-up (until the first range began), ranges (until the last was done), merge node
    seconds, merge wall (last range -> still validated), rest (mpirun, report, exit)"""
    d = r.get("detail") or {}
    fr = [f for f in d.get("frames", []) if f.get("state") == "done"]
    st = d.get("still") or {}
    if not fr or "merge_wall_seconds" not in st:
        return None
    first = min(f["finished_at"] - f["seconds"] for f in fr)
    last = max(f["finished_at"] for f in fr)
    return {"startup": first, "ranges": last - first, "merge_node": st["merge_seconds"],
            "merge_wall": st["merge_wall_seconds"],
            "range_seconds": [round(f["seconds"], 2) for f in fr],
            "rest": r["wall"] - last - st["merge_wall_seconds"]}
cuts = [c for c in (cut(r) for r in runs if r["name"] == "split" and r["rc"] == 0) if c]
cold = [c for c in (cut(r) for r in runs if r["name"] == "split-cold" and r["rc"] == 0) if c]
print("Split-still overhead: %s, %s samples, %s ranges, %s repetition(s), medians" % (res, samples, split, reps))
print()
print("| contender | wall (s) | vs single | CPU (s) | vs single | load (1 min, at end) |")
print("| --- | --- | --- | --- | --- | --- |")
single = med(walls("single"))
cpus = lambda name: [r["cpu"] for r in runs if r["name"] == name and r["rc"] == 0 and r.get("cpu")]
loads = lambda name: [r["load"] for r in runs if r["name"] == name and r.get("load") is not None]
csingle = med(cpus("single"))
for name, what in (("blender", "blender -b -t 2 -f (floor)"), ("single", "drender alone, 2 threads"),
                   ("split", "drender --split %s, 2 nodes x 1 thread, warm merge" % split),
                   ("split-cold", "the same, merge in a Blender of its own")):
    w, c = walls(name), cpus(name)
    print("| %s | %s | %s | %s | %s | %s |" % (
        what, "%.2f" % med(w) if w else "FAILED",
        "%.2fx" % (med(w) / single) if w and single == single else "-",
        "%.1f" % med(c) if c else "-", "%.2fx" % (med(c) / csingle) if c and csingle == csingle else "-",
        "%.1f" % med(loads(name)) if loads(name) else "-"))
if cuts:
    print()
    print("Where the split's time goes (median s): start-up %.2f | ranges %.2f | merge on the node %.2f "
          "(wall from the last range to the still %.2f) | mpirun and exit %.2f"
          % tuple(med([c[k] for c in cuts]) for k in ("startup", "ranges", "merge_node", "merge_wall", "rest")))
    print("Range render seconds (last repetition): %s" % cuts[-1]["range_seconds"])
if cold:
    print("Merge in a Blender of its own (median s): on the node %.2f, wall from the last range %.2f"
          % (med([c["merge_node"] for c in cold]), med([c["merge_wall"] for c in cold])))
json.dump({"res": res, "samples": int(samples), "split": int(split), "runs": runs, "cuts": cuts,
           "cuts_cold": cold},
          open(out_path, "w"), indent=1)
EOF
