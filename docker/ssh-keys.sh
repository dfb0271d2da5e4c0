#!/bin/sh
# Set up the ssh keys MPI uses between drender containers, once, in a shared volume.
#
# Usage: ssh-keys.sh [KEYDIR [SSHDIR]]
#   KEYDIR  the volume all containers share (default $DRENDER_KEYS, then /keys): one client key,
#           one host key, authorized_keys and known_hosts for the whole cluster, made by the
#           first container that starts (under a lock, so containers starting together agree)
#           and reused by every later start. Nothing is ever baked into the image.
#   SSHDIR  this container's own ssh directory (default $HOME/.ssh): a client config and an
#           sshd_config pointing at KEYDIR, rewritten at every start (cheap, idempotent).
# Environment: DRENDER_SSH_PORT (default 2222), the port the unprivileged sshd listens on.
set -eu

KEYDIR=${1:-${DRENDER_KEYS:-/keys}}
SSHDIR=${2:-$HOME/.ssh}
PORT=${DRENDER_SSH_PORT:-2222}
USER_NAME=$(id -un)

umask 077
mkdir -p "$KEYDIR" "$SSHDIR"
chmod 700 "$SSHDIR"
# Only this user reads the cluster's keys (sshd's StrictModes also insists on it).
chmod 700 "$KEYDIR" 2>/dev/null || chmod go-w "$KEYDIR" 2>/dev/null || true

make_keys() {
	if [ ! -s "$KEYDIR/id_ed25519" ] || [ ! -s "$KEYDIR/id_ed25519.pub" ]; then
		rm -f "$KEYDIR/.new" "$KEYDIR/.new.pub"
		ssh-keygen -q -t ed25519 -N '' -C "drender@cluster" -f "$KEYDIR/.new"
		mv "$KEYDIR/.new.pub" "$KEYDIR/id_ed25519.pub"
		mv "$KEYDIR/.new" "$KEYDIR/id_ed25519"
		echo "ssh-keys: made the cluster's client key in $KEYDIR" >&2
	fi
	if [ ! -s "$KEYDIR/ssh_host_ed25519_key" ] || [ ! -s "$KEYDIR/ssh_host_ed25519_key.pub" ]; then
		rm -f "$KEYDIR/.newhost" "$KEYDIR/.newhost.pub"
		ssh-keygen -q -t ed25519 -N '' -C "drender@cluster-host" -f "$KEYDIR/.newhost"
		mv "$KEYDIR/.newhost.pub" "$KEYDIR/ssh_host_ed25519_key.pub"
		mv "$KEYDIR/.newhost" "$KEYDIR/ssh_host_ed25519_key"
		echo "ssh-keys: made the cluster's host key in $KEYDIR" >&2
	fi
	# Derived files: rewritten only when their content would change.
	write_if_changed "$KEYDIR/authorized_keys" "$(cat "$KEYDIR/id_ed25519.pub")"
	# Every container presents the same host key, so one wildcard line covers them all,
	# under any name or address, and host key checking stays on.
	write_if_changed "$KEYDIR/known_hosts" "* $(cut -d' ' -f1,2 "$KEYDIR/ssh_host_ed25519_key.pub")"
}

write_if_changed() { # FILE CONTENT
	if [ ! -f "$1" ] || [ "$(cat "$1")" != "$2" ]; then
		printf '%s\n' "$2" >"$1.tmp"
		mv "$1.tmp" "$1"
	fi
}

# One container makes the keys; the others wait on the lock and find them made.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$KEYDIR/.lock"
	flock -w 60 9
	make_keys
	flock -u 9
	exec 9>&-
else
	make_keys
fi

write_if_changed "$SSHDIR/config" "# Written by drender's ssh-keys.sh at container start.
Host *
    Port $PORT
    User $USER_NAME
    IdentityFile $KEYDIR/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $KEYDIR/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes
    ConnectTimeout 5
    # A render node that goes silent drops its ssh session (and so its MPI daemon) in ~15 s.
    ServerAliveInterval 5
    ServerAliveCountMax 3
    LogLevel ERROR"

# An unprivileged sshd: the render user logs in to itself with the cluster key only.
root_line=""
[ "$(id -u)" -eq 0 ] && root_line="PermitRootLogin prohibit-password"
write_if_changed "$SSHDIR/sshd_config" "# Written by drender's ssh-keys.sh at container start.
Port $PORT
HostKey $KEYDIR/ssh_host_ed25519_key
AuthorizedKeysFile $KEYDIR/authorized_keys
PidFile $SSHDIR/sshd.pid
AllowUsers $USER_NAME
$root_line
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
X11Forwarding no
AllowTcpForwarding no
AllowAgentForwarding no
PermitTunnel no
PermitUserEnvironment no
PrintMotd no
ClientAliveInterval 5
ClientAliveCountMax 3
LogLevel ERROR"
