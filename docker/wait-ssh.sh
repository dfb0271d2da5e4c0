#!/bin/bash
# Wait until render nodes accept ssh connections, or give up at a deadline.
#
# Usage: wait-ssh.sh [--deadline SECS] [--port PORT] [--ssh] HOST[:PORT]...
#   --deadline SECS  give up after SECS seconds in all (default 120); exit 1 naming the hosts
#                    that never answered
#   --port PORT      port for hosts given without one (default $DRENDER_SSH_PORT, then 22)
#   --ssh            also require "ssh HOST true" to succeed (keys, host key, login), not only
#                    an open TCP port
# Exit: 0 when every host answered, 1 at the deadline, 2 on bad usage.
set -u

deadline=120
port=${DRENDER_SSH_PORT:-22}
use_ssh=0
while [ $# -gt 0 ]; do
	case $1 in
	--deadline) deadline=$2; shift 2 ;;
	--port) port=$2; shift 2 ;;
	--ssh) use_ssh=1; shift ;;
	--) shift; break ;;
	-*) echo "wait-ssh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
case $deadline in '' | *[!0-9]*) echo "wait-ssh: --deadline wants seconds, not '$deadline'" >&2; exit 2 ;; esac
[ $# -gt 0 ] || { echo "wait-ssh: no hosts given" >&2; exit 2; }

end=$((SECONDS + deadline))
pending=("$@")
ready() { # HOST[:PORT]
	local h=${1%:*} p=$port
	[ "$h" != "$1" ] && p=${1##*:}
	# The TCP port first (cheap, bounded), then a real login if asked.
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$h" "$p" 2>/dev/null || return 1
	[ "$use_ssh" = 1 ] || return 0
	timeout 10 ssh -p "$p" -o BatchMode=yes -o ConnectTimeout=5 "$h" true </dev/null >/dev/null 2>&1
}
while :; do
	left=()
	for h in "${pending[@]}"; do
		ready "$h" || left+=("$h")
	done
	pending=("${left[@]}")
	[ ${#pending[@]} -eq 0 ] && exit 0
	if [ "$SECONDS" -ge "$end" ]; then
		echo "wait-ssh: gave up after ${deadline}s: ${pending[*]} not accepting ssh connections" >&2
		exit 1
	fi
	sleep 1
done
