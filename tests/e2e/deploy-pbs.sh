#!/bin/bash
# End-to-end (TAP): scripts/pbs/drender.pbs, run the way a PBS mom runs a job script.
#
# Debian has no PBS server, so this test plays the batch system: it writes a $PBS_NODEFILE
# (three slots on localhost), sets PBS_O_WORKDIR, PBS_JOBID and OMP_NUM_THREADS as PBS Pro
# does, passes the arguments the PBS Pro way (qsub -v SCENE=...,START=...,END=...) and the
# Torque way (qsub -F "..."), and checks frames, report, exit status and resume. Everything
# runs on 127.0.0.1 with the fake Blender.
set -u

# shellcheck source-path=SCRIPTDIR source=deploy-lib.bash
. "$(dirname "$0")/deploy-lib.bash"
PBS_SCRIPT=$TOP/scripts/pbs/drender.pbs
PLAN=8

need_tools mpirun python3

T=$(new_tmp -d pbs)
JOB_PID=""
cleanup() {
	[ -n "$JOB_PID" ] && kill -9 "$JOB_PID" 2>/dev/null
	local pid
	for pid in $(pgrep -f "$T/"); do kill -9 "$pid" 2>/dev/null; done
	rm -rf "$T"
}
on_exit cleanup

echo "1..$PLAN"
need_drender

mkdir -p "$T/work"
printf 'BLENDER-v300 fake scene for the PBS test\n' >"$T/work/shot.blend"
printf 'localhost\nlocalhost\nlocalhost\n' >"$T/nodefile"
OUT=$T/work/output/shot
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
				DRENDER_MPIRUN_WRAPPER="$TOP/scripts/drender-mpirun" \
				"${MPI_ROOT_ENV[@]}" "${MPI_LOCAL_ENV[@]}" \
				"$@" bash "$PBS_SCRIPT" ${PBS_ARGS:+$PBS_ARGS}
	) >"$T/$name.log" 2>&1 &
	JOB_PID=$!
	wait_pid "$JOB_PID" 90
	RC=$?
	JOB_PID=""
}

# PBS Pro style: arguments as variables.
pbs_run pro SCENE=shot.blend START=1 END=10
grep 'drender.pbs' "$T/pro.log" | diag
check "qsub -v SCENE=shot.blend,START=1,END=10: exit 0 (got $RC)" -- [ "$RC" -eq 0 ]
[ "$RC" -eq 0 ] || tail -n 20 "$T/pro.log" | diag
check "10 frames in \$PBS_O_WORKDIR/output/shot (got $(frames_on_disk))" -- [ "$(frames_on_disk)" -eq 10 ]
check "node file of 3 slots -> 1 orchestrator + 2 render nodes, OMP_NUM_THREADS=2 Blender threads" -- \
	grep -q '(3 ranks = 1 orchestrator + 2 render nodes), 2 Blender threads each' "$T/pro.log"
check "report drender-42.json: 10 rendered ($(rendered_skipped "$OUT/drender-42.json"))" -- \
	[ "$(rendered_skipped "$OUT/drender-42.json")" = "rendered=10 skipped=0" ]

# Rerun after losing frames: resumes, report numbered.
rm -f "$OUT/frame_0002.png" "$OUT/frame_0009.png"
PBS_ARGS="shot.blend 1 10" pbs_run torque
check "qsub -F \"shot.blend 1 10\" (rerun): exit 0 (got $RC)" -- [ "$RC" -eq 0 ]
check "rerun renders only the 2 missing frames into drender-42.r1.json ($(rendered_skipped "$OUT/drender-42.r1.json"))" -- \
	[ "$(rendered_skipped "$OUT/drender-42.r1.json")" = "rendered=2 skipped=8" ]

# Usage errors exit 2.
pbs_run usage
check "no scene given: exit 2 with a usage message (got $RC)" -- eval "[ $RC -eq 2 ] && grep -q usage '$T/usage.log'"
sleep 0.5
left=$(pgrep -f "$T/" | tr '\n' ' ')
check "no drender or Blender process left (${left:-none})" -- [ -z "$left" ]

[ "$T_FAILED" -eq 0 ]
