#!/bin/bash
# Container entry point: a render node runs sshd; the head waits for the nodes, writes the
# hostfile and runs rank 0 as the HTTP service (drender-mpirun ... drender --serve).
#
# Environment (docker-compose.yml sets these; all optional):
#   DRENDER_ROLE        head (default) or node
#   DRENDER_NODES       head: render-node service names (default "node1 node2 node3")
#   DRENDER_SLOTS       head: render nodes (Blenders) per node container (default 1)
#   DRENDER_WAIT_SECS   head: how long to wait for the nodes' sshd (default 120)
#   DRENDER_MIN_NODES   head: start with fewer nodes than DRENDER_NODES, at least this many
#                       (default 1): once that many accept ssh, the others get
#                       DRENDER_NODE_GRACE_SECS (default 10) more, then the head starts without
#                       them and logs their names; restart the head when they are back
#   DRENDER_SCENE       head: default scene (default /blend/demo.blend, else the image's demo)
#   DRENDER_TOKEN       head: API token. Unset: drender listens on the container's loopback and
#                       a forwarder exposes it on the container network; compose publishes it
#                       on the host's 127.0.0.1 only. Set: drender listens on all addresses
#                       and every request but /health needs "Authorization: Bearer TOKEN".
#   DRENDER_HTTP_PORT   head: HTTP port (default 4000)
#   DRENDER_TLS_CERT, DRENDER_TLS_KEY  head: PEM certificate and private key (files mounted into
#                       the container): the API is served over HTTPS only. Without them a
#                       token-protected API travels in clear text (drender warns at start).
#   DRENDER_BLEND_ROOT, DRENDER_OUTPUT_ROOT  head: scene and output roots (default /blend, /output)
#   DRENDER_MPI_IF      interface or CIDR for MPI traffic (default: Open MPI's choice)
#   DRENDER_SSH_PORT    sshd port (default 2222)
# Any arguments are passed to drender (head) or run instead of the default (other roles).
set -euo pipefail

BIN=$(dirname "$(readlink -f "$0")")
role=${DRENDER_ROLE:-head}
port=${DRENDER_SSH_PORT:-2222}
log() { printf 'drender-%s: %s\n' "$role" "$*" >&2; }

"$BIN/ssh-keys.sh" "${DRENDER_KEYS:-/keys}" "$HOME/.ssh"

case $role in
node)
	log "sshd on port $port; waiting for the head to start a render node here"
	exec /usr/sbin/sshd -D -e -f "$HOME/.ssh/sshd_config"
	;;
head) ;;
*)
	exec "$@"
	;;
esac

# ---- head ------------------------------------------------------------------------------------
read -r -a nodes <<<"${DRENDER_NODES:-node1 node2 node3}"
min_nodes=${DRENDER_MIN_NODES:-1}
[ "$min_nodes" -le "${#nodes[@]}" ] 2>/dev/null || min_nodes=${#nodes[@]}
log "waiting up to ${DRENDER_WAIT_SECS:-120}s for ssh on: ${nodes[*]} (at least $min_nodes)"
# A node that is down must not keep the service down: start with the nodes that answer.
ready=$("$BIN/wait-ssh.sh" --deadline "${DRENDER_WAIT_SECS:-120}" --min "$min_nodes" \
	--grace "${DRENDER_NODE_GRACE_SECS:-10}" --port "$port" --ssh --print "${nodes[@]}")
read -r -a up <<<"${ready//$'\n'/ }"
missing=()
for n in "${nodes[@]}"; do
	case " ${up[*]} " in *" $n "*) ;; *) missing+=("$n") ;; esac
done
if [ ${#missing[@]} -gt 0 ]; then
	log "starting without ${missing[*]} (no ssh); restart the head when they are back"
fi
"$BIN/make-hostfile.sh" --head "$(hostname)" --slots "${DRENDER_SLOTS:-1}" "${up[@]}" \
	>"$HOME/hostfile"
np=$(awk '!/^#/ { for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { sub("slots=", "", $i); n += $i } } END { print n }' \
	"$HOME/hostfile")
log "hostfile: $(grep -v '^#' "$HOME/hostfile" | tr '\n' ' ')($np ranks)"

blend_root=${DRENDER_BLEND_ROOT:-/blend}
output_root=${DRENDER_OUTPUT_ROOT:-/output}
scene=${DRENDER_SCENE:-$blend_root/demo.blend}
if [ ! -r "$scene" ] && [ -z "${DRENDER_SCENE:-}" ]; then
	scene=/opt/drender/blend/demo.blend
	log "no demo.blend in $blend_root: the default scene is the image's demo ($scene)"
fi

http_port=${DRENDER_HTTP_PORT:-4000}
serve=(--serve --scene "$scene" --blend-root "$blend_root" --output-root "$output_root")
if [ -n "${DRENDER_TLS_CERT:-}${DRENDER_TLS_KEY:-}" ]; then
	serve+=(--tls-cert "${DRENDER_TLS_CERT:-}" --tls-key "${DRENDER_TLS_KEY:-}")
fi
if [ -n "${DRENDER_TOKEN:-}" ]; then
	# drender reads the token from DRENDER_TOKEN itself: it stays off the command line.
	export DRENDER_TOKEN
	serve+=(--listen "0.0.0.0:$http_port")
else
	unset DRENDER_TOKEN
	# drender refuses to serve a non-loopback address without a token: it listens on this
	# container's loopback, and socat forwards the container's own addresses to it. Only the
	# Compose network and the host's 127.0.0.1 (see docker-compose.yml) can reach it.
	serve+=(--listen "127.0.0.1:$http_port")
	for addr in $(hostname -I); do
		case $addr in *:*) continue ;; esac
		socat "TCP-LISTEN:$http_port,bind=$addr,reuseaddr,fork" "TCP:127.0.0.1:$http_port" &
	done
fi

# MPI between containers: ssh (config written by ssh-keys.sh) through drender-rsh, so that a node
# whose processes die is a lost node, not a failed launch that aborts the world (README, "Failure
# detection"); no tree spawn (render nodes do not ssh to each other), no shared-memory
# single-copy (needs ptrace rights containers lack).
rsh=$(dirname "$0")/drender-rsh
[ -x "$rsh" ] || rsh=ssh
export OMPI_MCA_plm_rsh_agent=$rsh
export OMPI_MCA_plm_rsh_no_tree_spawn=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_btl_base_warn_component_unused=0
# Bounded failure detection, as in the batch job scripts: a node that goes silent is declared
# lost after ~20 s (TCP keepalive 10 s + 5 x 2 s); ssh's ServerAlive (5 s x 3) backs it up.
export OMPI_MCA_oob_tcp_keepalive_time=${OMPI_MCA_oob_tcp_keepalive_time:-10}
export OMPI_MCA_oob_tcp_keepalive_intvl=${OMPI_MCA_oob_tcp_keepalive_intvl:-2}
export OMPI_MCA_oob_tcp_keepalive_probes=${OMPI_MCA_oob_tcp_keepalive_probes:-5}
if [ -n "${DRENDER_MPI_IF:-}" ]; then
	export OMPI_MCA_btl_tcp_if_include=$DRENDER_MPI_IF OMPI_MCA_oob_tcp_if_include=$DRENDER_MPI_IF
fi

# drender-mpirun: mpirun --enable-recovery, exiting with rank 0's status (mpirun's own is 0 under
# --enable-recovery), so that 75 (fewer live nodes than --min-nodes) reaches Compose's restart
# policy; it also ends an mpirun still waiting for a lost node's daemon after rank 0 is done.
launcher=$BIN/drender-mpirun
[ -x "$launcher" ] || launcher=drender-mpirun
log "starting: drender-mpirun -np $np drender ${serve[*]} $*${DRENDER_TOKEN:+ (token from DRENDER_TOKEN)}"
exec "$launcher" --hostfile "$HOME/hostfile" -np "$np" --bind-to none \
	drender "${serve[@]}" "$@"
