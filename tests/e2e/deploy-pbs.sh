#!/bin/bash
# End-to-end (TAP): scripts/pbs/drender.pbs, run the way a PBS mom runs a job script.
#
# Debian has no PBS server, so this test plays the batch system: it writes a $PBS_NODEFILE
# (three slots on localhost), sets PBS_O_WORKDIR, PBS_JOBID and OMP_NUM_THREADS as PBS Pro
# does, passes the arguments the PBS Pro way (qsub -v SCENE=...,START=...,END=...) and the
# Torque way (qsub -F "..."), and checks frames, report, exit status and resume. Everything
# runs on 127.0.0.1 with the fake Blender.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DRENDER=${DRENDER:-$ROOT/drender}
FAKE=$ROOT/tests/fixtures/fake-blender
PBS_SCRIPT=$ROOT/scripts/pbs/drender.pbs
PLAN=8

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
check() {
	local d=$1
	shift
	if "$@"; then ok "$d"; else notok "$d"; return 1; fi
}
diag() { sed 's/^/# /'; }

for tool in mpirun python3; do
	command -v "$tool" >/dev/null 2>&1 || { echo "1..0 # SKIP $tool not installed"; exit 0; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/drender-pbs.XXXXXX")
JOB_PID=""
cleanup() {
	[ -n "$JOB_PID" ] && kill -9 "$JOB_PID" 2>/dev/null
	local pid
	for pid in $(pgrep -f "$T/"); do kill -9 "$pid" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "1..$PLAN"
if [ ! -x "$DRENDER" ]; then
	while [ "$n" -lt "$PLAN" ]; do notok "no drender binary at $DRENDER (run make)"; done
	exit 1
fi

mkdir -p "$T/work"
printf 'BLENDER-v300 fake scene for the PBS test\n' >"$T/work/shot.blend"
printf 'localhost\nlocalhost\nlocalhost\n' >"$T/nodefile"
OUT=$T/work/output/shot
frames_on_disk() { find "$OUT" -maxdepth 1 -name 'frame_[0-9][0-9][0-9][0-9].png' -size +0 2>/dev/null | wc -l; }
rendered_skipped() {
	python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))["counts"]; print("rendered=%d skipped=%d" % (c["rendered"], c["skipped"]))' "$1" 2>/dev/null
}

# pbs_run NAME [args]: run the job script as PBS would (from $HOME-like cwd, with PBS_* set)
pbs_run() {
	local name=$1
	shift
	(
		cd / &&
			env PBS_NODEFILE="$T/nodefile" PBS_O_WORKDIR="$T/work" PBS_JOBID="42.pbs-test" \
				OMP_NUM_THREADS=2 DRENDER="$DRENDER" DRENDER_BLENDER="$FAKE" FAKE_BLENDER_COST=0.1 \
				OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
				OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo \
				OMPI_MCA_btl_base_warn_component_unused=0 \
				"$@" bash "$PBS_SCRIPT" ${PBS_ARGS:+$PBS_ARGS}
	) >"$T/$name.log" 2>&1 &
	JOB_PID=$!
	local deadline=$((SECONDS + 90))
	while kill -0 "$JOB_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
	if kill -0 "$JOB_PID" 2>/dev/null; then
		kill -9 "$JOB_PID"
		RC=124
	else
		wait "$JOB_PID"
		RC=$?
	fi
	JOB_PID=""
}

# PBS Pro style: arguments as variables.
pbs_run pro SCENE=shot.blend START=1 END=10
grep 'drender.pbs' "$T/pro.log" | diag
check "qsub -v SCENE=shot.blend,START=1,END=10: exit 0 (got $RC)" [ "$RC" -eq 0 ]
[ "$RC" -eq 0 ] || tail -n 20 "$T/pro.log" | diag
check "10 frames in \$PBS_O_WORKDIR/output/shot (got $(frames_on_disk))" [ "$(frames_on_disk)" -eq 10 ]
check "node file of 3 slots -> 1 orchestrator + 2 render nodes, OMP_NUM_THREADS=2 Blender threads" \
	grep -q '(3 ranks = 1 orchestrator + 2 render nodes), 2 Blender threads each' "$T/pro.log"
check "report drender-42.json: 10 rendered ($(rendered_skipped "$OUT/drender-42.json"))" \
	[ "$(rendered_skipped "$OUT/drender-42.json")" = "rendered=10 skipped=0" ]

# Rerun after losing frames: resumes, report numbered.
rm -f "$OUT/frame_0002.png" "$OUT/frame_0009.png"
PBS_ARGS="shot.blend 1 10" pbs_run torque
check "qsub -F \"shot.blend 1 10\" (rerun): exit 0 (got $RC)" [ "$RC" -eq 0 ]
check "rerun renders only the 2 missing frames into drender-42.r1.json ($(rendered_skipped "$OUT/drender-42.r1.json"))" \
	[ "$(rendered_skipped "$OUT/drender-42.r1.json")" = "rendered=2 skipped=8" ]

# Usage errors exit 2.
pbs_run usage
check "no scene given: exit 2 with a usage message (got $RC)" eval "[ $RC -eq 2 ] && grep -q usage '$T/usage.log'"
sleep 0.5
left=$(pgrep -f "$T/" | tr '\n' ' ')
check "no drender or Blender process left (${left:-none})" [ -z "$left" ]

[ "$failed" -eq 0 ]
