#!/bin/bash
# End-to-end (TAP): a service without shared storage. Three "hosts" built from network namespaces
# (head, node1, node2; see deploy-lib.bash); on node1 and node2 the rsh agent bind-mounts a private
# directory over the test's work directory, so no render node sees the scenes under rank 0's
# --blend-root. `drender --serve` runs under scripts/drender-mpirun with real Blender, and each
# node pulls a job's scene from rank 0 before it loads it (dr_fetch):
#
# 1. The service's default scene (--scene), a textured scene (tests/fixtures/make_textured.py)
#    only the head has: the nodes fetch it to warm up on it, a job of it is done, and both nodes'
#    caches hold rank 0's packed copy (texture inside), named by its SHA-256.
# 2. A second job of the same scene (other settings, so the nodes reload it) stages 0 bytes: the
#    nodes have the copy in their caches. After its texture is edited, a third job gets a new
#    packed copy.
# 3. A job of a scene whose texture is missing on the head fails, and /status lists the file.
# 4. A node killed while a big scene is on its way to it (fake Blender, head's link shaped):
#    rank 0 abandons that transfer, keeps answering, and the job is done by the other node.
#
# Neither node sees rank 0's --output-root either: every frame comes home over MPI (dr_collect).
#
# Needs root (namespaces, mounts), iproute2, unshare, Open MPI, python3, curl, Blender.
set -u

# shellcheck source-path=SCRIPTDIR source=deploy-lib.bash
. "$(dirname "$0")/deploy-lib.bash"
PLAN=25

skip_if_fast_only
need_root "network namespaces and mounts need root"
need_tools ip tc unshare mpirun python3 curl blender

netns_init drf
HOSTS="head node1 node2"
T=$(new_tmp -d nostorage-serve)
PRIV=$(new_tmp -d nostorage-serve-hosts)
A=$(new_tmp -d nostorage-serve-agent) # the agent and its maps: outside T, which nodes do not see
JOB=""

cleanup() {
	[ -n "$JOB" ] && kill -9 "$JOB" 2>/dev/null
	netns_cleanup
	keep_logs "$T"/*.log
	rm -rf "$T" "$PRIV" "$A"
}
on_exit cleanup

# shellcheck disable=SC2086
if ! private_cluster 10.79.0 "$A" "$T" "$PRIV" $HOSTS; then
	echo "1..0 # SKIP cannot create network namespaces, veth pairs or a bridge here: $(tail -n 1 "$T/setup.log")"
	exit 0
fi
on_head() { as_host head "$@"; }
PORT=$(free_port)
LOG=$T/serve.log

api() { # api METHOD PATH [BODY]: HTTP from inside head; CODE and $T/body
	CODE=$(on_head curl -s -X "$1" -o "$T/body" -w '%{http_code}' ${3:+-H 'Content-Type: application/json' --data-binary "$3"} \
		"http://127.0.0.1:$PORT$2")
}
field() { python3 -c 'import json,sys; print(eval(sys.argv[1], {"d": json.load(open(sys.argv[2]))}))' "$1" "$T/body" 2>/dev/null; }
wait_until() { # wait_until SECONDS COMMAND...: until COMMAND succeeds; 1 at the deadline
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@"; do
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		kill -0 "$JOB" 2>/dev/null || return 1
		sleep 0.2
	done
}
state_of() { api GET "/status/$1" >/dev/null && field 'd["state"]'; }
ended() { case $(state_of "$1") in done | failed | cancelled) return 0 ;; esac; return 1; }
staged_lines() { grep -c "scene staged (" "$LOG"; }
cache_entries() { # cache_entries HOST: the .blend entries in HOST's private cache
	find "$PRIV/$1/cache" -maxdepth 1 -name '*.blend' 2>/dev/null
}
netns_job_pids() { # drender, Blender and mpirun processes still in our namespaces
	local pid
	for pid in $(netns_pids 2>/dev/null); do
		case "$(cat "/proc/$pid/comm" 2>/dev/null)" in
		drender | blender | mpirun | orted) echo "$pid" ;;
		esac
	done
}

echo "1..$PLAN"
check_drender

# --- the scenes, on head's side only ------------------------------------------------------------
mkdir -p "$T/blends" "$T/srv"
blender -b --factory-startup --python-exit-code 1 --python "$TOP/tests/fixtures/make_textured.py" \
	-- "$T/blends/tex" >"$T/make-tex.log" 2>&1
mkdir -p "$T/blends/lacking"
cp "$T/blends/tex/textured.blend" "$T/blends/lacking/textured.blend" # without its tex/ folder
check "the textured scene is made, on head's side only" -- \
	eval "[ -s $T/blends/tex/tex/checker.png ] && [ ! -e $PRIV/node1/blends ]"

# --- the service --------------------------------------------------------------------------------
# (not through on_head: JOB is then drender-mpirun's own PID, which passes SIGTERM on)
# shellcheck disable=SC2016,SC2086
ip netns exec "$(ns_of head)" unshare --uts /bin/sh -c 'hostname head && exec "$@"' sh \
	"$TOP/scripts/drender-mpirun" $MPIRUN_ARGS -np 3 "$DRENDER" --serve \
	--listen "127.0.0.1:$PORT" --blend-root "$T/blends" --output-root "$T/srv" \
	--scene "$T/blends/tex/textured.blend" --cache-dir "$T/cache" >"$LOG" 2>&1 &
JOB=$!
wait_until 60 api GET /health
check "drender --serve is up on head with node1 and node2 (got ${CODE:-nothing})" -- [ "${CODE:-}" = 200 ]

# --- 1: the default scene, which only head has ---------------------------------------------------
t0=$(date +%s.%N)
api POST /render '{"from":1,"to":4,"output":"first"}'
J1=$(field 'd["jobId"]')
check "POST /render: 202 ($J1)" -- [ "$CODE" = 202 ]
wait_until 90 ended "$J1"
s1=$(state_of "$J1")
check "the job is done (got ${s1:-nothing})" -- [ "$s1" = done ]
[ "$s1" = done ] || { field 'd.get("error")' | diag; tail -n 20 "$LOG" | diag; }
t1=$(date +%s.%N)
check "rank 0 packed the scene's texture into the copy it staged" -- grep -q "packing .*textured.blend" "$LOG"
packed=$(find "$T/cache/packed" -name '*.blend' 2>/dev/null | head -n 1)
psize=$(stat -c %s "$packed" 2>/dev/null)
check "both nodes' caches hold rank 0's packed copy, named by its SHA-256 ($psize bytes)" -- \
	eval "[ -n '$packed' ] && cmp -s '$packed' \"\$(cache_entries node1)\" && cmp -s '$packed' \"\$(cache_entries node2)\""
n1=$(staged_lines)
check "rank 0's log says so, once per node ($n1 lines)" -- [ "$n1" = 2 ]
check "no node failed to load the default scene" -- eval "! grep -q 'cannot load the default scene' $LOG"
grep "scene staged (" "$LOG" | diag
check "rank 0 found that neither node sees its output root" -- \
	grep -q "2 nodes cannot see the output directory" "$LOG"
homed=$(python3 - "$T/srv/first" <<'PY'
import glob, sys
files = glob.glob(sys.argv[1] + "/**/*.png", recursive=True)
good = [f for f in files if open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and open(f, "rb").read()[-8:-4] == b"IEND"]
print(len(files), len(good))
PY
)
check "the job's 4 frames came home: on rank 0's disk, valid ($homed)" -- [ "$homed" = "4 4" ]
left=$(find "$PRIV/node1" "$PRIV/node2" -path '*/srv/*' -name '*.png' 2>/dev/null | wc -l)
check "the nodes deleted their copies once rank 0 had them ($left left)" -- [ "$left" -eq 0 ]

# --- 2: the same scene again --------------------------------------------------------------------
api POST /render '{"blend":"tex/textured.blend","from":5,"to":6,"output":"second","samples":2}'
J2=$(field 'd["jobId"]')
wait_until 90 ended "$J2"
s2=$(state_of "$J2")
check "a second job of the same scene is done (got ${s2:-nothing})" -- [ "$s2" = done ]
check "and it staged 0 bytes: no node received the scene again ($(staged_lines) lines)" -- \
	[ "$(staged_lines)" = "$n1" ]
# The texture edited since (the .blend unchanged): rank 0 packs again and the nodes get the new
# copy, not the stale one (other settings, so that the nodes reload).
python3 - "$T/blends/tex/tex/checker.png" <<'PY'
import struct, sys, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
rows = b"".join(b"\0" + b"\xff\x20\x20" * 4 for _ in range(4))  # 4x4, red: another texture
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
                              + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
PY
api POST /render '{"blend":"tex/textured.blend","from":7,"to":8,"output":"edited","samples":3}'
J2b=$(field 'd["jobId"]')
wait_until 90 ended "$J2b"
s2b=$(state_of "$J2b")
packs=$(grep -c "packing .*textured.blend" "$LOG")
check "after the texture is edited: done ($s2b), packed again ($packs packings) and staged again ($(staged_lines) lines)" -- \
	eval "[ '$s2b' = done ] && [ $packs -eq 2 ] && [ $(staged_lines) -gt $n1 ]"

# --- 3: a scene whose texture is missing --------------------------------------------------------
api POST /render '{"blend":"lacking/textured.blend","from":1,"to":2,"output":"lacking"}'
J3=$(field 'd["jobId"]')
wait_until 90 ended "$J3"
s3=$(state_of "$J3")
check "a job of a scene whose texture is missing fails (got ${s3:-nothing})" -- [ "$s3" = failed ]
field 'd.get("error", "")' >"$T/error.txt"
check "and /status lists the missing file" -- grep -q 'checker.png' "$T/error.txt"
diag <"$T/error.txt"

# --- the end of the first service ---------------------------------------------------------------
kill -TERM "$JOB" 2>/dev/null
wait_pid "$JOB" 60 >/dev/null
JOB=""
summary=$(grep "scenes fetched by render nodes" "$LOG")
echo "# job 1 took $(echo "$t1 - $t0" | bc) s; $summary"
# the warm-up: the packed copy to both nodes; job 2: from their caches (job 1 may have reloaded
# too); the edited texture's job: the new copy to the nodes that render it (1 or 2); job 3: the
# scene itself (it cannot be packed without its texture) to both
check "rank 0's summary counts what was staged (${summary#*: })" -- \
	eval "echo '$summary' | grep -q ': [56] staged ([0-9]* bytes, .*), [2-4] from cache, 0 at the same path, 0 failed'"
check "nothing of the service is left in the namespaces" -- gone_within 20 netns_job_pids

# --- 4: a node killed while the scene is on its way ---------------------------------------------
mkdir -p "$T/blends/big"
{ printf 'BLENDER-v304 fake scene, fetched\n'; head -c 20000000 /dev/urandom; } >"$T/blends/big/big.blend"
netns_shape head 40mbit # both nodes share head's link: about 8 s for the two copies
LOG=$T/serve-kill.log
PORT=$(free_port)
# shellcheck disable=SC2016,SC2086
ip netns exec "$(ns_of head)" unshare --uts /bin/sh -c 'hostname head && exec "$@"' sh \
	"$TOP/scripts/drender-mpirun" $MPIRUN_ARGS -np 3 "$DRENDER" --serve --blender "$FAKE" \
	--listen "127.0.0.1:$PORT" --blend-root "$T/blends" --output-root "$T/srv" \
	--cache-dir "$T/cache" --node-timeout 4 >"$LOG" 2>&1 &
JOB=$!
wait_until 60 api GET /health
api POST /render '{"blend":"big/big.blend","from":1,"to":4,"output":"big"}'
J4=$(field 'd["jobId"]')
receiving() { # receiving HOST: bytes of HOST's cache entry being written (its temporary file)
	find "$PRIV/$1/cache" -maxdepth 1 -name '*.tmp-*' -printf '%s\n' 2>/dev/null | sort -n | tail -n 1
}
midway() { local b; b=$(receiving node1); [ "${b:-0}" -gt 1000000 ]; }
wait_until 60 midway
victim=""
for pid in $(ip netns pids "$(ns_of node1)"); do
	[ "$(cat "/proc/$pid/comm" 2>/dev/null)" = drender ] && victim=$pid
done
got=$(receiving node1)
check "node1 was caught mid-transfer (${got:-0} of $(stat -c %s "$T/blends/big/big.blend") bytes, drender pid ${victim:-none})" -- \
	eval "[ -n '$victim' ] && [ ${got:-0} -gt 0 ]"
[ -n "$victim" ] && kill -9 "$victim"
api GET /health
check "rank 0 still answers at once (/health: $CODE)" -- [ "$CODE" = 200 ]
wait_until 90 ended "$J4"
s4=$(state_of "$J4")
check "the job is done by node2 (got ${s4:-nothing})" -- [ "$s4" = done ]
[ "$s4" = done ] || tail -n 20 "$LOG" | diag
check "rank 0 declared node1 lost and abandoned its transfer" -- \
	eval "grep -q 'rank 1 (node1) is lost' $LOG && grep -q 'rank 1 is lost: its copy of .* is abandoned' $LOG"
check "node2 has the whole scene in its cache" -- \
	cmp -s "$T/blends/big/big.blend" "$(find "$PRIV/node2/cache" -maxdepth 1 -name '*.blend' -size +10M | head -n 1)"
grep -E "staged \(|abandoned|transfer is dropped|is lost" "$LOG" | diag
kill -TERM "$JOB" 2>/dev/null
wait_pid "$JOB" 60 >/dev/null
JOB=""
check "nothing of the second service is left in the namespaces" -- gone_within 20 netns_job_pids

[ "$T_N" -eq "$PLAN" ] || echo "# planned $PLAN tests, ran $T_N"
[ "$T_FAILED" -eq 0 ]
