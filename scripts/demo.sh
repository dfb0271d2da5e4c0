#!/bin/sh
# make demo: build the demo scene if needed, then render its 20 frames on 4 ranks into output/.
set -eu
cd "$(dirname "$0")/.."

BLENDER=${DRENDER_BLENDER:-blender}
if [ ! -s blend/demo.blend ] || [ blend/make_demo.py -nt blend/demo.blend ] ||
	[ blend/scene_kit.py -nt blend/demo.blend ]; then
	echo "demo: building blend/demo.blend from blend/make_demo.py"
	"$BLENDER" -b --factory-startup --python-exit-code 1 --python blend/make_demo.py \
		-- "$PWD/blend/demo.tmp.blend" >/dev/null
	mv blend/demo.tmp.blend blend/demo.blend
fi

# Open MPI refuses root unless told; a demo machine is often a fresh root container. Said out
# loud: drender-mpirun stops as root without this opt-in (see drender-mpirun --help).
if [ "$(id -u)" -eq 0 ]; then
	echo "demo: running as root: OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
	export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# 4 ranks: rank 0 hands out frames, ranks 1-3 render. drender-mpirun is mpirun with what drender
# needs: --enable-recovery (a render node that dies is a fault of that node; the others finish
# its frames), --bind-to none, and --oversubscribe (4 ranks on fewer cores: rank 0 mostly sleeps,
# and the render nodes split the CPUs between their Blenders); it exits with rank 0's status,
# which mpirun alone would not.
echo "demo: scripts/drender-mpirun -np 4 ./drender blend/demo.blend 1 20 -o output/demo_####"
exec scripts/drender-mpirun -np 4 ./drender blend/demo.blend 1 20 -o output/demo_#### \
	--report output/demo-report.json "$@"
