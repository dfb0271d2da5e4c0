# The end-to-end tests' helper library (sourced by every tests/e2e/*.sh): TAP output, skips, waits,
# a scratch directory, process checks, an HTTP client and a drender service. deploy-lib.bash adds
# the deployment tests' helpers (network namespaces, clusters) on top of it.
#
# A script that sources it tests drender on this machine alone: Open MPI's traffic stays on
# loopback and $WORK is its scratch directory, removed on exit with every process that names it.
# deploy-lib.bash sources it with E2E_DEPLOY=1: no $WORK, Open MPI's environment left as it is.
#
# TAP: T_N tests so far, T_FAILED of them failed; a script with a fixed plan sets PLAN (fail_rest).
# shellcheck shell=bash

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DRENDER=${DRENDER:-$TOP/drender}
# shellcheck disable=SC2034 # the fake Blender, for the tests that source this
FAKE=$TOP/tests/fixtures/fake-blender

# --- TAP -------------------------------------------------------------------------------------
T_N=0
T_FAILED=0
ok() { # ok STATUS DESCRIPTION...: a test that passes when STATUS is 0
	local st=$1
	shift
	T_N=$((T_N + 1))
	if [ "$st" -eq 0 ]; then
		echo "ok $T_N - $*"
	else
		echo "not ok $T_N - $*"
		T_FAILED=$((T_FAILED + 1))
	fi
}
pass() { ok 0 "$@"; } # pass DESCRIPTION...: a test that passed
fail() { ok 1 "$@"; } # fail DESCRIPTION...: a test that failed
skip() {              # skip REASON: a test that cannot run here (listed by run-suite)
	skip_note "$*"
	T_N=$((T_N + 1))
	echo "ok $T_N # SKIP $*"
}
check() { # check DESCRIPTION -- COMMAND...: a test that passes when COMMAND succeeds (its output
	# is dropped); returns COMMAND's status, e.g. for `check ... || diag <log`
	local d=$1 st
	shift 2
	"$@" >/dev/null 2>&1
	st=$?
	ok $st "$d"
	return $st
}
is() { # is GOT WANT DESCRIPTION
	if [ "$1" = "$2" ]; then ok 0 "$3"; else
		ok 1 "$3"
		echo "#   got '$1', want '$2'"
	fi
}
diag() { sed 's/^/# /'; } # diag <FILE: a failing test's diagnostics, as TAP comments
done_testing() {
	echo "1..$T_N"
	[ "$T_FAILED" -eq 0 ]
}
fail_rest() { # fail_rest REASON: the remaining tests of the plan (PLAN) cannot run: fail them
	while [ "$T_N" -lt "$PLAN" ]; do fail "$1"; done
	exit 1
}
skip_all() { # skip_all REASON: the whole script is skipped (run-suite lists it, see skip_kind)
	skip_note "$*"
	echo "1..0 # SKIP $*"
	exit 0
}
# skip_kind REASON: how tests/e2e/run-suite classes a skip: "setup" when the reason names a step
# that was not done (a tool make deps installs, "run make", an image the test builds: make check
# fails), "asked" when the run asked for it (DR_E2E_FAST_ONLY), else "machine" (not root, no GPU,
# no namespaces: something this machine cannot do).
skip_kind() {
	case $1 in
	*DR_E2E_FAST_ONLY*) echo asked ;;
	*"not installed"* | *install-deps* | *"make deps"* | *"run make"* | *"no base image"*) echo setup ;;
	*) echo machine ;;
	esac
}
# skip_note REASON: record a skip in $DR_E2E_SKIPS (set by tests/e2e/run-suite) as
# "SCRIPT<TAB>KIND<TAB>REASON".
skip_note() {
	[ -n "${DR_E2E_SKIPS:-}" ] || return 0
	printf '%s\t%s\t%s\n' "${0##*/}" "$(skip_kind "$1")" "$1" >>"$DR_E2E_SKIPS"
}

# --- clean-up --------------------------------------------------------------------------------
on_exit() { # on_exit FUNCTION: run it whatever happens (exit, or Ctrl-C / SIGTERM: status 130),
	# then remove $WORK and what runs in it
	# shellcheck disable=SC2064
	trap "$1${WORK:+; cleanup_work}" EXIT
	trap 'exit 130' INT TERM
}
cleanup_work() {
	# Nothing this test started may outlive it.
	local p
	[ -n "$WORK" ] || return 0
	for p in $(leftover_pids); do
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$WORK"
}

T_COMM=$(cat /proc/$$/comm) # this script's shells (subshells keep the name)
WORK=
if [ -z "${E2E_DEPLOY:-}" ]; then
	export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
	# Quiet Open MPI's help banners and keep its traffic on this machine.
	export OMPI_MCA_btl_base_warn_component_unused=0 OMPI_MCA_btl_tcp_if_include=lo \
		OMPI_MCA_oob_tcp_if_include=lo
	unset DRENDER_BLENDER
	MPIRUN=(mpirun --oversubscribe)
	WORK=$(mktemp -d /tmp/drender-e2e.XXXXXX)
	trap cleanup_work EXIT
fi

# A scene the fake Blender accepts.
fake_scene() {
	printf 'BLENDER-v304 fake scene for tests\n' >"$1"
}

# json FILE EXPR: evaluate a Python expression on the parsed JSON report, e.g. 'd["counts"]["rendered"]'
json() {
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

# Processes (Blender, drender, mpirun, ...) running in or naming the scratch directory; the test's
# own shells are not counted.
leftover_pids() {
	local p
	for p in /proc/[0-9]*; do
		case "$(cat "$p/comm" 2>/dev/null)" in
		"$T_COMM" | bash | cat | tr | readlink | wc | "") continue ;; # the test's own shells, tools
		esac
		case "$(readlink "$p/cwd" 2>/dev/null) $(tr '\0' ' ' 2>/dev/null <"$p/cmdline")" in
		*"$WORK"*) echo "${p#/proc/}" ;;
		esac
	done
}
leftovers() {
	leftover_pids | wc -l
}

# rank_pid N: the PID of this test's drender rank N (a drender process whose working directory is
# the scratch directory, found by its environment), or nothing.
rank_pid() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(cat "$p/comm" 2>/dev/null)" = drender ] || continue
		[ "$(readlink "$p/cwd" 2>/dev/null)" = "$WORK" ] || continue
		tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" &&
			echo "${p#/proc/}" && return
	done
}

# Temporary files left in a directory.
tmpfiles() {
	find "$1" -name '.drender-tmp-*' 2>/dev/null | wc -l
}

# valid_pngs DIR: count files whose bytes start with the PNG signature and end with IEND.
valid_pngs() {
	python3 - "$1" <<'PY'
import os, sys
d = sys.argv[1]
n = 0
for f in sorted(os.listdir(d)):
    if f.startswith("."):  # temporary files are not frames
        continue
    b = open(os.path.join(d, f), "rb").read()
    if b.startswith(b"\x89PNG\r\n\x1a\n") and b[-8:-4] == b"IEND":
        n += 1
print(n)
PY
}

# Describe the leftovers (for a failing test's diagnostics).
show_leftovers() {
	local p
	for p in $(leftover_pids); do
		echo "#   leftover: $p $(tr '\0' ' ' 2>/dev/null <"/proc/$p/cmdline")"
	done
}

# --- an HTTP client for the service tests (URL is the service's base address) --------------
free_port() { # a TCP port free on 127.0.0.1 just now
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# http METHOD PATH [BODY] [CURL ARGS...]: sets CODE; the body is in $WORK/body, headers in
# $WORK/head. BODY is sent byte for byte (--data-binary), as application/json.
http() {
	local m=$1 p=$2 b=${3-}
	shift 2
	[ $# -gt 0 ] && shift
	if [ -n "$b" ]; then
		CODE=$(curl -s -X "$m" -o "$WORK/body" -D "$WORK/head" -w '%{http_code}' -H 'Content-Type: application/json' --data-binary "$b" "$@" "$URL$p")
	else
		CODE=$(curl -s -X "$m" -o "$WORK/body" -D "$WORK/head" -w '%{http_code}' "$@" "$URL$p")
	fi
}
header() { # header NAME: its value in the last answer
	tr -d '\r' <"$WORK/head" | sed -n "s/^$1: //Ip" | head -n 1
}
field() { # field EXPR: evaluated on the last answer's JSON as d
	json "$WORK/body" "$1" 2>/dev/null
}
# wait_state ID STATE [SECONDS [CURL ARGS...]]: poll GET /status/ID until it says STATE.
wait_state() {
	local _
	for _ in $(seq $((${3:-30} * 5))); do
		http GET "/status/$1" '' "${@:4}"
		[ "$(field 'd["state"]')" = "$2" ] && return 0
		sleep 0.2
	done
	return 1
}

# wait_for SECONDS COMMAND...: run COMMAND until it succeeds (0), or until SECONDS pass (1).
wait_for() {
	local deadline=$(($(date +%s) + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.1
	done
}

# has_files N DIR [PATTERN]: DIR holds at least N files named PATTERN (default *.png; not below
# DIR): for wait_for, e.g. `wait_for 30 has_files 2 out` (a job is mid-way).
has_files() {
	[ "$(find "$2" -maxdepth 1 -name "${3:-*.png}" 2>/dev/null | wc -l)" -ge "$1" ]
}

# --- a drender service for the HTTP tests ---------------------------------------------------
# svc_setup: the service tests' common start: skipped without curl; works in $WORK, with blends/
# holding the fake scene shot.blend, and out/; no token from the caller's environment; PORT (free
# now) and URL for a service on 127.0.0.1; SVC_ARGS for svc_start: that scene, blends/ as the blend
# root, out/ as the output root.
svc_setup() {
	command -v curl >/dev/null || skip_all "curl is not installed"
	cd "$WORK" || exit 1
	mkdir -p blends out
	fake_scene blends/shot.blend
	unset DRENDER_TOKEN
	PORT=$(free_port)
	URL=http://127.0.0.1:$PORT
	SVC_ARGS=(--scene "$WORK/blends/shot.blend" --blend-root "$WORK/blends" --output-root "$WORK/out")
}
# svc_start NP [DRENDER ARGS...]: start `drender --serve` under mpirun with NP ranks in the
# background, listening on $LISTEN (default 127.0.0.1:$PORT), with SVC_ARGS (an array the script
# sets once: its --scene, roots, ...) and then ARGS; output appended to $SVC_LOG.out and .err
# (default $WORK/serve). Sets SERVE_PID (mpirun's). 0 once $URL/health answers; 1 if the service
# exits first or does not answer within $SVC_WAIT seconds (default 60). SVC_MPIRUN (an array)
# replaces MPIRUN, e.g. to add --enable-recovery.
svc_start() {
	local np=$1 log=${SVC_LOG:-$WORK/serve} deadline
	local -a mpi=("${MPIRUN[@]}")
	shift
	[ -n "${SVC_MPIRUN+set}" ] && mpi=("${SVC_MPIRUN[@]}")
	"${mpi[@]}" -np "$np" "$DRENDER" --serve --listen "${LISTEN:-127.0.0.1:$PORT}" \
		"${SVC_ARGS[@]}" "$@" >>"$log.out" 2>>"$log.err" &
	SERVE_PID=$!
	deadline=$(($(date +%s) + ${SVC_WAIT:-60}))
	until curl -s -k -o /dev/null "$URL/health"; do
		kill -0 "$SERVE_PID" 2>/dev/null || return 1
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.2
	done
}
# svc_stop: end the service svc_start started (SIGTERM, as a user's Ctrl-C or a container stop
# would) and wait for it; its exit status (0 if none was running).
svc_stop() {
	local rc=0
	if [ -n "${SERVE_PID:-}" ]; then
		kill -TERM "$SERVE_PID" 2>/dev/null
		wait "$SERVE_PID" 2>/dev/null
		rc=$?
	fi
	SERVE_PID=
	return $rc
}

# --- real Blender ---------------------------------------------------------------------------
# sampling_blender LOG [SECONDS]: print the PID of the first Blender whose output, echoed into LOG
# by `drender -v` as "[blender PID] ...", shows a "Sample" line (that Blender has a frame in
# flight: a kill then costs a frame attempt, not a scene load). 1 if none does within SECONDS
# (default 60).
sampling_blender() {
	local deadline=$(($(date +%s) + ${2:-60})) pid
	for (( ; ; )); do
		pid=$(sed -n 's/^\[blender \([0-9]*\)\] Fra:.*Sample.*/\1/p' "$1" 2>/dev/null | head -n 1)
		[ -n "$pid" ] && echo "$pid" && return 0
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.1
	done
}
