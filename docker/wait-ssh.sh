#!/bin/bash
# Wait until render nodes accept ssh connections, or give up at a deadline.
#
# Usage: wait-ssh.sh [--deadline SECS] [--min N] [--grace SECS] [--port PORT] [--ssh] [--print]
#                    HOST[:PORT]...
#   --deadline SECS  give up after SECS seconds in all (default 120); exit 1 naming the hosts
#                    that never answered
#   --min N          enough hosts (default: all of them): once N have answered, wait at most
#                    --grace more seconds (never past the deadline) for the others, then
#                    succeed without them, naming them on standard error
#   --grace SECS     see --min (default 10)
#   --port PORT      port for hosts given without one (default $DRENDER_SSH_PORT, then 22)
#   --ssh            also require "ssh HOST true" to succeed (keys, host key, login), not only
#                    an open TCP port
#   --print          print the hosts that answered on standard output, one per line, in the
#                    order given
# Exit: 0 when every host (or, with --min, enough hosts) answered, 1 at the deadline with fewer,
# 2 on bad usage.
set -u

deadline=120
port=${DRENDER_SSH_PORT:-22}
use_ssh=0
min=""
grace=10
print=0
while [ $# -gt 0 ]; do
	case $1 in
	--deadline) deadline=$2; shift 2 ;;
	--port) port=$2; shift 2 ;;
	--min) min=$2; shift 2 ;;
	--grace) grace=$2; shift 2 ;;
	--ssh) use_ssh=1; shift ;;
	--print) print=1; shift ;;
	--) shift; break ;;
	-*) echo "wait-ssh: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
case $deadline in '' | *[!0-9]*) echo "wait-ssh: --deadline wants seconds, not '$deadline'" >&2; exit 2 ;; esac
case $grace in '' | *[!0-9]*) echo "wait-ssh: --grace wants seconds, not '$grace'" >&2; exit 2 ;; esac
[ $# -gt 0 ] || { echo "wait-ssh: no hosts given" >&2; exit 2; }
min=${min:-$#}
case $min in '' | *[!0-9]* | 0) echo "wait-ssh: --min wants a positive number, not '$min'" >&2; exit 2 ;; esac
[ "$min" -le $# ] || { echo "wait-ssh: --min $min but only $# hosts given" >&2; exit 2; }

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
enough_at="" # when --min hosts had answered
finish() { # print the hosts that answered, in the order given
	local h p
	if [ "$print" = 1 ]; then
		for h in "$@"; do
			for p in "${pending[@]}"; do [ "$p" = "$h" ] && continue 2; done
			echo "$h"
		done
	fi
	exit 0
}
while :; do
	left=()
	for h in "${pending[@]}"; do
		ready "$h" || left+=("$h")
	done
	pending=("${left[@]}")
	[ ${#pending[@]} -eq 0 ] && finish "$@"
	if [ -z "$enough_at" ] && [ $(($# - ${#pending[@]})) -ge "$min" ]; then
		enough_at=$SECONDS
	fi
	if [ -n "$enough_at" ] && { [ $((SECONDS - enough_at)) -ge "$grace" ] || [ "$SECONDS" -ge "$end" ]; }; then
		echo "wait-ssh: going on without ${pending[*]}: not accepting ssh connections ($(($# - ${#pending[@]})) of $# answered, at least $min wanted)" >&2
		finish "$@"
	fi
	if [ "$SECONDS" -ge "$end" ]; then
		echo "wait-ssh: gave up after ${deadline}s: ${pending[*]} not accepting ssh connections ($(($# - ${#pending[@]})) of $# answered, at least $min wanted)" >&2
		exit 1
	fi
	sleep 1
done
