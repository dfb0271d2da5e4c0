# Helpers for the deployment tests (sourced by the tests that build hosts of their own: deploy-*.sh,
# launch-netns.sh, nostorage*.sh, chaos.sh, container.sh), on top of lib.sh (TAP, skips, waits):
# skip conditions, temporary directories, Open MPI's environment, and the "cluster" of network
# namespaces that deploy-netns.sh and deploy-compose-sim.sh build.
# Named .bash, not .sh: every tests/e2e/*.sh but lib.sh is run as a test.
# shellcheck shell=bash

# shellcheck source-path=SCRIPTDIR source=lib.sh
E2E_DEPLOY=1
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck disable=SC2034 # the repository, as bench/chaos.sh (which sources this) calls it
ROOT=$TOP

# --- what a test needs -----------------------------------------------------------------------
skip_if_fast_only() { # the deployment tests are slow: DR_E2E_FAST_ONLY=1 skips them
	if [ "${DR_E2E_FAST_ONLY:-}" = 1 ]; then skip_all "slow deployment test (DR_E2E_FAST_ONLY=1)"; fi
}
need_root() { # need_root WHY: skip the test (saying WHY) unless run as root
	[ "$(id -u)" -eq 0 ] || skip_all "$1"
}
need_tools() { # need_tools [-h HINT] TOOL...: skip "TOOL not installed[ HINT]" unless all are on PATH
	local hint="" tool
	if [ "$1" = -h ]; then
		hint=" $2"
		shift 2
	fi
	for tool; do
		command -v "$tool" >/dev/null 2>&1 || skip_all "$tool not installed$hint"
	done
}
# Tests with a plan of their own: the drender binary, or every remaining test fails.
need_drender() { # all tests fail (not ok) without it
	[ -x "$DRENDER" ] || fail_rest "no drender binary at $DRENDER (run make)"
}
check_drender() { # one test: the binary exists; without it the remaining tests fail
	if [ ! -x "$DRENDER" ]; then
		fail "drender binary exists at $DRENDER (run make)"
		fail_rest "cannot run without the drender binary ($DRENDER)"
	fi
	pass "drender binary exists at $DRENDER"
}

# --- temporary files, clean-up -----------------------------------------------------------------
new_tmp() { # new_tmp [-d] NAME: print the path of a new temporary file (-d: directory) drender-NAME.*
	local opt=()
	if [ "$1" = -d ]; then
		opt=(-d)
		shift
	fi
	mktemp "${opt[@]}" "${TMPDIR:-/tmp}/drender-$1.XXXXXX"
}
keep_logs() { # keep_logs FILE...: DEPLOY_LOGDIR=DIR keeps the test's logs for a look afterwards
	[ -n "${DEPLOY_LOGDIR:-}" ] && mkdir -p "$DEPLOY_LOGDIR" && cp "$@" "$DEPLOY_LOGDIR"/ 2>/dev/null
}
gone_within() { # gone_within SECONDS COMMAND...: wait until COMMAND prints nothing; 1 at the deadline
	local deadline=$(($(date +%s) + $1))
	shift
	while [ -n "$("$@")" ]; do
		[ "$(date +%s)" -ge "$deadline" ] && return 1
		sleep 0.5
	done
	return 0
}
wait_pid() { # wait_pid PID SECONDS: its exit status, or 124 after SIGKILL if still running then
	local pid=$1 deadline=$(($(date +%s) + $2))
	while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.2; done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		return 124
	fi
	wait "$pid"
}

# --- frames ------------------------------------------------------------------------------------
frames_on_disk() { # frames in $OUT (frame_NNNN.png, not empty)
	find "$OUT" -maxdepth 1 -name 'frame_[0-9][0-9][0-9][0-9].png' -size +0 2>/dev/null | wc -l
}
list_frames() { # list_frames FILE: name, inode and mtime of each frame in $OUT, to FILE
	find "$OUT" -name 'frame_*.png' -printf '%f %i %T@\n' | sort >"$1"
}
untouched() { # untouched BEFORE AFTER (list_frames files): no frame of BEFORE was replaced or removed
	[ -z "$(comm -23 "$1" "$2")" ]
}

# --- Open MPI ----------------------------------------------------------------------------------
MPI_ROOT_ENV=(OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
# A job on this machine only: traffic on loopback, no banner about unused components.
# shellcheck disable=SC2034 # used by the tests that source this
MPI_LOCAL_ENV=(OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
	OMPI_MCA_btl_base_warn_component_unused=0)
mpi_as_root() { export "${MPI_ROOT_ENV[@]}"; } # these tests run as root

# --- a cluster of network namespaces -----------------------------------------------------------
# netns_init PREFIX: names (PREFIX + this shell's PID, short enough for link names) for
# netns_cluster; nothing is made yet. netns_cleanup removes whatever netns_cluster made.
netns_init() {
	P=$1$$
	SW=${P}sw
	NSES=""
	MADE_ETC_NETNS=0
	[ -d /etc/netns ] || MADE_ETC_NETNS=1
}
ns_of() { # host name -> namespace name
	echo "${P}$1"
}
# netns_cluster NET DIR HOST...: a switch namespace ($SW) holding a bridge, and one namespace per
# HOST joined to the bridge by a veth pair (eth0 inside, ${P}v<i> on the bridge), with address
# NET.10, NET.11, ... (/24) that exists only inside these namespaces. DIR/hosts maps addresses to
# host names, DIR/nsmap host names to namespaces.
netns_cluster() {
	local net=$1 dir=$2 i=0 h ns
	shift 2
	ip netns add "$SW" || return 1
	NSES=$SW
	ip -n "$SW" link set lo up &&
		ip -n "$SW" link add br0 type bridge &&
		ip -n "$SW" link set br0 up || return 1
	: >"$dir/hosts"
	: >"$dir/nsmap"
	for h; do
		echo "$net.$((10 + i)) $h" >>"$dir/hosts"
		i=$((i + 1))
	done
	i=0
	for h; do
		ns=$(ns_of "$h")
		ip netns add "$ns" || return 1
		NSES="$NSES $ns"
		ip link add "${P}v$i" type veth peer name eth0 netns "$ns" &&
			ip link set "${P}v$i" netns "$SW" &&
			ip -n "$SW" link set "${P}v$i" master br0 &&
			ip -n "$SW" link set "${P}v$i" up &&
			ip -n "$ns" link set lo up &&
			ip -n "$ns" addr add "$net.$((10 + i))/24" dev eth0 &&
			ip -n "$ns" link set eth0 up || return 1
		# ip netns exec bind-mounts these over /etc/hosts and /etc/resolv.conf: names resolve
		# locally, and a DNS query (if anything tried one) would go to the namespace's own lo.
		mkdir -p "/etc/netns/$ns" &&
			{ echo "127.0.0.1 localhost"; cat "$dir/hosts"; } >"/etc/netns/$ns/hosts" &&
			echo "nameserver 127.0.0.1" >"/etc/netns/$ns/resolv.conf" || return 1
		echo "$h $ns" >>"$dir/nsmap"
		i=$((i + 1))
	done
}
as_host() { # as_host HOST COMMAND...: run COMMAND in HOST's namespace, under HOST as UTS hostname
	local host=$1
	shift
	# shellcheck disable=SC2016 # $0 and $@ are the inner shell's
	ip netns exec "$(ns_of "$host")" unshare --uts /bin/sh -c 'hostname "$0" && exec "$@"' "$host" "$@"
}
# netns_rsh_agent FILE NSMAP: write FILE, an rsh agent for Open MPI (plm_rsh_agent) that stands in
# for ssh: "AGENT [options] HOST COMMAND..." runs COMMAND inside HOST's namespace (NSMAP maps
# hosts to namespaces), under HOST as UTS hostname, through a shell as sshd would. Like ssh, the
# agent itself stays on the launching side: when the remote side is killed it says so, naming
# the host, and exits 255 as ssh does when it loses its connection.
netns_rsh_agent() {
	cat >"$1" <<EOF
#!/bin/sh
while [ \$# -gt 0 ]; do case \$1 in -*) shift ;; *) break ;; esac; done
host=\$1; shift
ns=\$(awk -v h="\$host" '\$1 == h { print \$2 }' "$2")
if [ -z "\$ns" ]; then echo "netns-agent: unknown host \$host" >&2; exit 255; fi
ip netns exec "\$ns" unshare --uts /bin/sh -c 'hostname "\$0" && exec /bin/sh -c "\$1"' "\$host" "\$*"
rc=\$?
if [ \$rc -gt 128 ]; then
	echo "netns-agent: connection to \$host closed: remote command killed by signal \$((rc - 128))" >&2
	exit 255
fi
exit \$rc
EOF
	chmod +x "$1"
}
netns_pids() { # the processes in our namespaces
	local ns
	for ns in $NSES; do ip netns pids "$ns"; done
}
netns_cleanup() { # kill everything in our namespaces, remove them and their /etc/netns entries
	local pid ns
	for pid in $(netns_pids 2>/dev/null); do kill -9 "$pid" 2>/dev/null; done
	for ns in $NSES; do
		ip netns del "$ns" 2>/dev/null
		rm -rf "/etc/netns/$ns"
	done
	if [ "$MADE_ETC_NETNS" = 1 ]; then rmdir /etc/netns 2>/dev/null; fi
}

# --- hosts without shared storage ----------------------------------------------------------------
# netns_private_agent AGENT NSMAP DIR PRIVROOT: write an rsh agent (as deploy-netns.sh's) that runs
# the command inside the host's namespace and, on every host but "head", in a mount namespace of
# its own where PRIVROOT/<host> is bind-mounted over DIR: no render node sees rank 0's files under
# DIR (its scene, its output directory) nor the other nodes', and each node's files there (its
# cache) outlive the run, as a real disk's would.
netns_private_agent() {
	local agent=$1 nsmap=$2 dir=$3 priv=$4
	cat >"$agent" <<AGENT
#!/bin/sh
while [ \$# -gt 0 ]; do case \$1 in -*) shift ;; *) break ;; esac; done
host=\$1; shift
ns=\$(awk -v h="\$host" '\$1 == h { print \$2 }' "$nsmap")
if [ -z "\$ns" ]; then echo "netns-agent: unknown host \$host" >&2; exit 255; fi
if [ "\$host" = head ]; then
	ip netns exec "\$ns" unshare --uts /bin/sh -c 'hostname "\$0" && exec /bin/sh -c "\$1"' "\$host" "\$*"
else
	mkdir -p "$priv/\$host"
	ip netns exec "\$ns" unshare --uts --mount --propagation private /bin/sh -c \
		'hostname "\$0" && mount --bind "\$2" "\$3" && cd "\$3" && exec /bin/sh -c "\$1"' \
		"\$host" "\$*" "$priv/\$host" "$dir"
fi
rc=\$?
if [ \$rc -gt 128 ]; then
	echo "netns-agent: connection to \$host closed: remote command killed by signal \$((rc - 128))" >&2
	exit 255
fi
exit \$rc
AGENT
	chmod +x "$agent"
}
# private_cluster NET A T PRIV HOST...: namespace hosts on NET.0/24 (netns_cluster, maps in A)
# whose rsh agent $A/agent hides T from every host but head (netns_private_agent, each host's own
# files under PRIV/<host>), one slot each in $A/hostfile; exports MPI's run-as-root variables and
# sets MPIRUN_ARGS for mpirun on head. 1, with the reason in $T/setup.log, when the hosts cannot
# be made.
private_cluster() {
	local net=$1 a=$2 t=$3 priv=$4 h
	shift 4
	netns_cluster "$net" "$a" "$@" >"$t/setup.log" 2>&1 || return 1
	netns_private_agent "$a/agent" "$a/nsmap" "$t" "$priv"
	: >"$a/hostfile"
	for h in "$@"; do echo "$h slots=1" >>"$a/hostfile"; done
	mpi_as_root
	MPIRUN_ARGS="--hostfile $a/hostfile --mca plm_rsh_agent $a/agent --mca plm_rsh_no_tree_spawn 1
 --mca btl self,vader,tcp --mca btl_tcp_if_include $net.0/24 --mca oob_tcp_if_include $net.0/24"
}
# netns_shape HOST RATE: limit HOST's outgoing traffic to RATE (tc syntax, e.g. 20mbit).
netns_shape() {
	ip netns exec "$(ns_of "$1")" tc qdisc replace dev eth0 root tbf rate "$2" burst 64kb latency 500ms
}
