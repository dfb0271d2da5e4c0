#!/bin/bash
# End-to-end (TAP): no shared storage. Three "hosts" built from network namespaces (head, node1,
# node2; see deploy-lib.bash); on node1 and node2 the rsh agent bind-mounts a private directory
# over the test's work directory, so no render node sees rank 0's scene or output directory.
#
# 1. A real-Blender render of a small scene: rank 0 stages the scene to both nodes (MPI), they
#    render, and every frame comes home: all on rank 0's disk, valid, none left on the nodes.
# 2. The same again: the nodes' caches have the scene (0 bytes staged).
# 3. Frames coming home over shaped links (fake Blender, big frames), under --enable-recovery:
#    node1's drender is killed while a frame is on its way; every frame still ends up on rank
#    0's disk, valid, and rank 0 reports exit 0 with node1 lost.
# 4. A node killed while the scene is on its way (the chain head -> node1 -> node2): node2 is
#    re-fed by rank 0, gets the scene, and the job still renders every frame.
#
# 5. A scene with an external texture (tests/fixtures/make_textured.py): the nodes see neither the
#    scene nor its texture, so rank 0 sends a packed copy (dr_assets_pack); without it a node's
#    check of the scene's files would end the run with exit 2. A re-run reuses the packed copy;
#    once the texture is edited, it is packed and sent again.
#
# Needs root (namespaces, mounts), iproute2 (ip, tc), unshare, Open MPI, python3, Blender.
set -u

# shellcheck source-path=SCRIPTDIR source=deploy-lib.bash
. "$(dirname "$0")/deploy-lib.bash"
PLAN=30
FRAMES=4      # real Blender frames
KFRAMES=8     # fake Blender frames in the kill case
PAD=3000000   # bytes per fake frame
RATE=12mbit   # the nodes' links in the kill case: about 2 s per frame coming home
# Seconds mpirun gets to exit by itself once rank 0 has reported, before the test ends it (it may
# wait for the killed node's daemon; the launch scripts' DRENDER_FINAL_GRACE; nothing here
# depends on its length).
FINAL_GRACE=5

skip_if_fast_only
need_root "network namespaces and mounts need root"
need_tools ip tc unshare mpirun python3 blender

netns_init drs
HOSTS="head node1 node2"
T=$(new_tmp -d nostorage)
PRIV=$(new_tmp -d nostorage-hosts)
A=$(new_tmp -d nostorage-agent) # the agent and its maps: outside T, which nodes do not see
BG=""

cleanup() {
	local pid
	for pid in $BG; do kill -9 "$pid" 2>/dev/null; done
	netns_cleanup
	keep_logs "$T"/*.log "$T"/*.json
	rm -rf "$T" "$PRIV" "$A"
}
on_exit cleanup

# shellcheck disable=SC2086
if ! private_cluster 10.78.0 "$A" "$T" "$PRIV" $HOSTS; then
	echo "1..0 # SKIP cannot create network namespaces, veth pairs or a bridge here: $(tail -n 1 "$T/setup.log")"
	exit 0
fi
on_head() { as_host head "$@"; }

# valid_pngs DIR N: N frame_NNNN.png files in DIR, each with PNG's signature and ending in IEND
valid_pngs() {
	python3 - "$1" "$2" <<'PY'
import glob, sys
files = sorted(glob.glob(sys.argv[1] + "/frame_*.png"))
bad = [f for f in files
       if not (open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and open(f, "rb").read()[-8:-4] == b"IEND")]
sys.exit(0 if len(files) == int(sys.argv[2]) and not bad else 1)
PY
}
# drender, Blender and mpirun processes still in our namespaces
netns_job_pids() {
	local pid
	for pid in $(netns_pids 2>/dev/null); do
		case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
		drender | blender | fake-blender | python3 | mpirun | orted) echo "$pid" ;;
		esac
	done
}
jget() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null; }

echo "1..$PLAN"

# --- the hosts ----------------------------------------------------------------------------------
on_head timeout 60 mpirun $MPIRUN_ARGS -np 3 hostname >"$T/hostname.out" 2>"$T/hostname.err"
check "mpirun through the agent runs on head, node1, node2" -- \
	[ "$(sort "$T/hostname.out" | tr '\n' ' ')" = "head node1 node2 " ]
check_drender
blender -b --factory-startup --python-exit-code 1 --python "$TOP/tests/fixtures/make_tiny.py" \
	-- "$T/tiny.blend" >"$T/make.log" 2>&1
check "the tiny scene is made (on head's side)" -- [ -s "$T/tiny.blend" ]
"$A/agent" node1 "test ! -e $T/tiny.blend && touch $T/node1-was-here"
rc=$?
check "node1 does not see head's files, and writes its own" -- \
	eval "[ $rc -eq 0 ] && [ -e $PRIV/node1/node1-was-here ] && [ ! -e $T/node1-was-here ]"

# --- 1: staged, rendered, brought home ----------------------------------------------------------
run_real() { # run_real NAME [OPTION...]
	local name=$1
	shift
	# shellcheck disable=SC2086
	on_head timeout 300 mpirun $MPIRUN_ARGS -np 3 "$DRENDER" --cache-dir "$T/cache" \
		-o "$T/out/frame_####" --report "$T/$name.json" "$@" "$T/tiny.blend" 1 "$FRAMES" \
		>"$T/$name.log" 2>&1
}
run_real first
rc=$?
check "real Blender across hosts without shared storage exits 0 (got $rc)" -- [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || tail -n 20 "$T/first.log" | diag
check "every frame is on rank 0's disk and valid" -- valid_pngs "$T/out" "$FRAMES"
size=$(stat -c %s "$T/tiny.blend")
is_staged=$(jget "$T/first.json" 'd["staging"]["nodes_staged"], d["staging"]["bytes"]')
check "the scene was staged to both nodes ($is_staged; $size bytes each)" -- \
	[ "$is_staged" = "2 $((2 * size))" ]
check "both nodes keep the scene in their cache, named by its SHA-256" -- \
	eval "ls $PRIV/node1/cache/*.blend $PRIV/node2/cache/*.blend >/dev/null"
homes=$(jget "$T/first.json" 'd["collect"]["frames"], all(f.get("home_bytes", 0) > 0 for f in d["frames"])')
check "the report says $FRAMES frames came home, each with its bytes ($homes)" -- \
	[ "$homes" = "$FRAMES True" ]
left=$(find "$PRIV/node1/out" "$PRIV/node2/out" -name 'frame_*' 2>/dev/null | wc -l)
[ "$left" -eq 0 ] || find "$PRIV/node1/out" "$PRIV/node2/out" | diag
check "the nodes deleted their copies once rank 0 had them ($left left)" -- [ "$left" -eq 0 ]
check "no temporary file is left in rank 0's output directory" -- \
	eval "! ls -A $T/out | grep -q drender-tmp"

# --- 2: the cache is reused ---------------------------------------------------------------------
run_real second --overwrite
rc=$?
check "the second run exits 0 (got $rc)" -- [ "$rc" -eq 0 ]
cached=$(jget "$T/second.json" 'd["staging"]["nodes_cached"], d["staging"]["bytes"]')
check "the second run staged 0 bytes: both nodes had it cached ($cached)" -- [ "$cached" = "2 0" ]
check "and its frames are on rank 0's disk and valid" -- valid_pngs "$T/out" "$FRAMES"

# --- 3: a node killed while a frame is on its way home -----------------------------------------
printf 'BLENDER-v304 fake scene for the nostorage test\n' >"$T/fake.blend"
mkdir -p "$T/out3"
netns_shape node1 "$RATE"
netns_shape node2 "$RATE"
# shellcheck disable=SC2086
FAKE_BLENDER_PNG_PAD=$PAD FAKE_BLENDER_COST=0.2 on_head mpirun --enable-recovery $MPIRUN_ARGS \
	-np 3 -x FAKE_BLENDER_PNG_PAD -x FAKE_BLENDER_COST "$DRENDER" --blender "$FAKE" \
	--node-timeout 5 --cache-dir "$T/cache" -o "$T/out3/frame_####" --report "$T/kill.json" \
	"$T/fake.blend" 1 "$KFRAMES" >"$T/kill.log" 2>&1 &
JOB=$!
BG="$BG $JOB"
# wait until node1 has a rendered frame waiting to go home and rank 0 is receiving one
deadline=$(($(date +%s) + 120))
while kill -0 "$JOB" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
	if ls "$PRIV/node1/out3" 2>/dev/null | grep -q '^frame_' &&
		ls -A "$T/out3" | grep -q drender-tmp; then break; fi
	sleep 0.1
done
victim=""
for pid in $(ip netns pids "$(ns_of node1)"); do
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = drender ] && victim=$pid
done
on_disk=$(find "$T/out3" -name 'frame_*.png' | wc -l)
check "node1 was caught mid-transfer ($on_disk of $KFRAMES frames home, drender pid ${victim:-none})" -- \
	eval "[ -n '$victim' ] && [ $on_disk -lt $KFRAMES ]"
[ -n "$victim" ] && kill -9 "$victim"
deadline=$(($(date +%s) + 150))
until [ -s "$T/kill.json" ] || ! kill -0 "$JOB" 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; do
	sleep 0.5
done
rc0=$(jget "$T/kill.json" 'd["exit_code"]')
check "rank 0 reports exit 0 after losing node1 (got '${rc0:-no report}')" -- [ "$rc0" = 0 ]
[ "$rc0" = 0 ] || tail -n 20 "$T/kill.log" | diag
lost=$(jget "$T/kill.json" '[r["host"] for r in d["ranks"] if r["lost"]]')
check "the report names node1 as lost ($lost)" -- [ "$lost" = "['node1']" ]
check "no frame was lost: all $KFRAMES on rank 0's disk and valid" -- valid_pngs "$T/out3" "$KFRAMES"
big=$(find "$T/out3" -name 'frame_*.png' -size +2000k | wc -l)
check "they are the big frames ($big of $KFRAMES over 2 MB)" -- [ "$big" -eq "$KFRAMES" ]
deadline=$(($(date +%s) + FINAL_GRACE))
while kill -0 "$JOB" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
kill -TERM "$JOB" 2>/dev/null
check "no temporary file is left in rank 0's output directory" -- \
	eval "! ls -A $T/out3 | grep -q drender-tmp"
wait_pid "$JOB" 20 >/dev/null

# --- 4: a node killed while the scene is on its way ---------------------------------------------
# The chain is head -> first node to answer -> the other. Head's link is not shaped, so the first
# node gets the scene quickly and forwards it at the nodes' rate (faster than part 3's, which is
# too slow for Open MPI's TCP connection set-up here); it is killed while the other is half-way.
{ printf 'BLENDER-v304 fake scene, staged\n'; head -c 40000000 /dev/urandom; } >"$T/big.blend"
netns_shape node1 40mbit
netns_shape node2 40mbit
# shellcheck disable=SC2086
on_head mpirun --enable-recovery $MPIRUN_ARGS -np 3 "$DRENDER" --blender "$FAKE" \
	--node-timeout 4 --cache-dir "$T/cache" -o "$T/out4/frame_####" --report "$T/stage-kill.json" \
	"$T/big.blend" 1 4 >"$T/stage-kill.log" 2>&1 &
JOB=$!
BG="$BG $JOB"
received() { # received HOST: bytes of the scene HOST has so far (cache entry or temporary file)
	find "$PRIV/$1/cache" -type f -newer "$T/big.blend" -printf '%s\n' 2>/dev/null | sort -n | tail -1
}
victim_host="" other=""
deadline=$(($(date +%s) + 120))
while kill -0 "$JOB" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
	a=$(received node1) b=$(received node2)
	if [ "${a:-0}" -gt 1000000 ] && [ "${b:-0}" -gt 1000000 ] && [ "${a:-0}" -ne "${b:-0}" ]; then
		if [ "$a" -gt "$b" ]; then victim_host=node1 other=node2; else victim_host=node2 other=node1; fi
		break
	fi
	sleep 0.1
done
victim=""
if [ -n "$victim_host" ]; then
	for pid in $(ip netns pids "$(ns_of "$victim_host")"); do
		[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = drender ] && victim=$pid
	done
fi
check "the first node was caught forwarding the scene ($victim_host, pid ${victim:-none}; $other has $(received "${other:-node2}") bytes)" -- \
	eval "[ -n '$victim' ] && [ $(received "${other:-node2}") -lt $(stat -c %s "$T/big.blend") ]"
[ -n "$victim" ] && kill -9 "$victim"
deadline=$(($(date +%s) + 150))
until [ -s "$T/stage-kill.json" ] || ! kill -0 "$JOB" 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; do
	sleep 0.5
done
rc0=$(jget "$T/stage-kill.json" 'd["exit_code"]')
check "rank 0 reports exit 0 after losing $victim_host mid-staging (got '${rc0:-no report}')" -- [ "$rc0" = 0 ]
[ "$rc0" = 0 ] || tail -n 20 "$T/stage-kill.log" | diag
st=$(jget "$T/stage-kill.json" 'd["staging"]["nodes_staged"], d["staging"]["nodes_failed"]')
check "$other was re-fed and got the scene, $victim_host counted as failed ($st)" -- [ "$st" = "1 1" ]
check "every frame is on rank 0's disk and valid" -- valid_pngs "$T/out4" 4
deadline=$(($(date +%s) + FINAL_GRACE))
while kill -0 "$JOB" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
kill -TERM "$JOB" 2>/dev/null
wait_pid "$JOB" 20 >/dev/null
# --- 5: a scene with an external texture travels packed ----------------------------------------
blender -b --factory-startup --python-exit-code 1 --python "$TOP/tests/fixtures/make_textured.py" \
	-- "$T/tex" >"$T/make-tex.log" 2>&1
# shellcheck disable=SC2086
on_head timeout 300 mpirun $MPIRUN_ARGS -np 3 "$DRENDER" --cache-dir "$T/cache" \
	-o "$T/out5/frame_####" --report "$T/tex.json" "$T/tex/textured.blend" 1 2 >"$T/tex.log" 2>&1
rc=$?
check "a textured scene the nodes cannot see renders: exit 0 (got $rc)" -- [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || tail -n 20 "$T/tex.log" | diag
check "rank 0 packed its texture into the copy it staged" -- grep -q "packing .*textured.blend" "$T/tex.log"
check "both frames are on rank 0's disk and valid" -- valid_pngs "$T/out5" 2
# The packed copy is reused while what went into it is unchanged, and made again once the texture
# was edited (a stale copy would render the old texture on every node, quietly).
tex_again() { # tex_again NAME: frame 3 of the textured scene
	# shellcheck disable=SC2086
	on_head timeout 300 mpirun $MPIRUN_ARGS -np 3 "$DRENDER" --cache-dir "$T/cache" \
		-o "$T/out5/frame_####" --report "$T/$1.json" "$T/tex/textured.blend" 3 3 >"$T/$1.log" 2>&1
}
tex_again tex-same
rc=$?
check "run again unchanged: exit $rc, the packed copy reused (not packed again)" -- \
	eval "[ $rc -eq 0 ] && ! grep -q 'packing .*textured.blend' '$T/tex-same.log'"
touch "$T/tex/tex/checker.png"
rm -f "$T/out5/frame_0003.png"
tex_again tex-edited
rc=$?
check "after the texture is edited: exit $rc, packed again and sent again" -- \
	eval "[ $rc -eq 0 ] && grep -q 'packing .*textured.blend' '$T/tex-edited.log' &&
		[ \"\$(jget '$T/tex-edited.json' 'd[\"staging\"][\"bytes\"] > 0')\" = True ]"

check "nothing of the jobs is left in the namespaces" -- gone_within 20 netns_job_pids

[ "$T_N" -eq "$PLAN" ] || echo "# planned $PLAN tests, ran $T_N"
[ "$T_FAILED" -eq 0 ]
