#!/bin/bash
# End-to-end (TAP): the Docker deployment, checked without a Docker engine.
#
# - docker-compose.yml validates (Debian's docker-compose 1.29 parses it without a daemon) and
#   has the services, ports, mounts and health check the tutorial relies on;
# - docker/Dockerfile: Debian 12 stages, every package it apt-installs exists in Debian 12,
#   no compilers in the runtime stage, a non-root user, a HEALTHCHECK, COPY sources present
#   and not excluded by .dockerignore;
# - the entry-point scripts, run here as they run in the containers: hostfile generation
#   from a service list, the ssh wait and its deadline, key set-up (idempotent, safe when
#   containers start together), and a real login through an unprivileged sshd configured by
#   them (in a private mount namespace with a throwaway "render" user; loopback only), and the
#   head's entry point up to the mpirun command it would run.
set -u

# shellcheck source-path=SCRIPTDIR source=deploy-lib.bash
. "$(dirname "$0")/deploy-lib.bash"
DOCKERFILE=$TOP/docker/Dockerfile
D=$TOP/docker
PLAN=29

T=$(new_tmp -d compose)
chmod 755 "$T"
PIDS=""
cleanup() {
	local pid
	for pid in $PIDS; do kill "$pid" 2>/dev/null; done
	for pid in $PIDS; do wait "$pid" 2>/dev/null; done
	rm -rf "$T"
}
on_exit cleanup

echo "1..$PLAN"

# --- docker-compose.yml ------------------------------------------------------------------------
if command -v docker-compose >/dev/null 2>&1; then
	(cd "$TOP" && docker-compose -f docker-compose.yml config) >"$T/config.yml" 2>"$T/config.err"
	rc=$?
	check "docker-compose config validates docker-compose.yml" -- [ "$rc" -eq 0 ]
	[ "$rc" -eq 0 ] || diag <"$T/config.err"
	python3 - "$T/config.yml" "$TOP" >"$T/compose.check" 2>&1 <<'EOF'
import sys, yaml
c = yaml.safe_load(open(sys.argv[1])); root = sys.argv[2]
s = c["services"]
def say(ok, what): print(("PASS " if ok else "FAIL ") + what)
say(sorted(s) == ["head", "node1", "node2", "node3"], "services are head, node1, node2, node3 (%s)" % sorted(s))
head = s.get("head", {})
ports = [str(p.get("target")) + "->" + str(p.get("published")) if isinstance(p, dict) else str(p)
         for p in head.get("ports", [])]
say(any(p.startswith("4000->4000") or "4000:4000" in p for p in ports), "head publishes port 4000 (%s)" % ports)
roles = {k: v.get("environment", {}).get("DRENDER_ROLE") for k, v in s.items()}
say(roles == {"head": "head", "node1": "node", "node2": "node", "node3": "node"}, "roles: %s" % roles)
mounts_ok = True
for name, svc in s.items():
    vols = svc.get("volumes", [])
    norm = []
    for v in vols:
        if isinstance(v, dict):
            norm.append((v.get("source"), v.get("target"), bool(v.get("read_only"))))
        else:
            parts = v.split(":")
            norm.append((parts[0], parts[1], len(parts) > 2 and parts[2] == "ro"))
    keys = {("ssh-keys", "/keys", False)}
    want = keys | {(root + "/blend", "/blend", True), (root + "/output", "/output", False)}
    if set(norm) != (want if name == "head" else keys):
        mounts_ok = False
        print("# %s mounts: %s" % (name, norm))
say(mounts_ok, "the head mounts ./blend read-only on /blend, ./output read-write on /output and the ssh-keys volume on /keys; the render nodes only the ssh-keys volume (MPI carries scenes and frames)")
hc = " ".join(head.get("healthcheck", {}).get("test", []))
say("curl" in hc and "http://localhost:4000/health" in hc, "head health check: curl http://localhost:4000/health (%s)" % hc)
deps = head.get("depends_on", {})
say(sorted(deps) == ["node1", "node2", "node3"], "head depends on the three render nodes")
nodes_env = head.get("environment", {}).get("DRENDER_NODES", "")
say(nodes_env.split() == ["node1", "node2", "node3"], "head's DRENDER_NODES names the render-node services (%s)" % nodes_env)
EOF
	while read -r verdict what; do
		case $verdict in PASS) pass "compose: $what" ;; FAIL) fail "compose: $what" ;; *) echo "$verdict $what" ;; esac
	done <"$T/compose.check"
else
	for i in 1 2 3 4 5 6 7 8; do skip "docker-compose not installed (make deps installs it)"; done
fi

# --- Dockerfile ----------------------------------------------------------------------------------
python3 - "$DOCKERFILE" "$TOP" >"$T/dockerfile.check" 2>&1 <<'EOF'
import fnmatch, os, re, sys
path, root = sys.argv[1], sys.argv[2]
text = open(path).read().replace("\\\n", " ")
lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", "\n".join(lines), re.M))
stages, cur = [], None
for l in lines:
    if l.upper().startswith("FROM "):
        image = l.split()[1]
        image = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), image)
        cur = {"image": image, "pkgs": [], "user": None, "health": None, "copies": []}
        stages.append(cur)
    elif cur is None:
        continue
    elif l.upper().startswith("RUN ") and "apt-get install" in l:
        for seg in l.split("&&"):
            if "apt-get install" in seg:
                words = seg.split("apt-get install", 1)[1].split()
                cur["pkgs"] += [w for w in words if not w.startswith("-")]
    elif l.upper().startswith("USER "):
        cur["user"] = l.split()[1]
    elif l.upper().startswith("HEALTHCHECK "):
        cur["health"] = l
    elif l.upper().startswith("COPY ") and "--from" not in l:
        cur["copies"] += l.split()[1:-1]
def say(ok, what): print(("PASS " if ok else "FAIL ") + what)
say(len(stages) >= 2 and all(s["image"].startswith("debian:bookworm") for s in stages),
    "multi-stage build, every stage FROM Debian 12 (%s)" % [s["image"] for s in stages])
run = stages[-1]
for s in stages:
    print("PKGS " + " ".join(s["pkgs"]))
bad = [p for p in run["pkgs"] if re.search(r"(^gcc|^g\+\+|^clang|^build-essential$|-dev$|^make$|^cpp)", p)]
say(not bad and run["pkgs"], "runtime stage installs no compiler or -dev package (%s)" % (bad or run["pkgs"]))
need = {"blender", "openmpi-bin", "libcjson1", "libmicrohttpd12", "openssh-server", "openssh-client", "curl"}
say(need <= set(run["pkgs"]), "runtime stage has %s" % " ".join(sorted(need)))
say(run["user"] not in (None, "root", "0"), "runtime stage runs as a non-root user (%s)" % run["user"])
say(bool(run["health"]), "runtime stage has a HEALTHCHECK")
# COPY sources: present, and not excluded by .dockerignore (else the build fails).
ignore = []
di = os.path.join(root, ".dockerignore")
if os.path.exists(di):
    ignore = [l.strip().rstrip("/") for l in open(di) if l.strip() and not l.startswith("#")]
missing, ignored = [], []
for s in stages:
    for src in s["copies"]:
        if src.startswith("--"):
            continue
        p = src.rstrip("/")
        if not os.path.exists(os.path.join(root, p)):
            missing.append(src)
        for pat in ignore:
            if fnmatch.fnmatch(p, pat) or fnmatch.fnmatch(p, pat.replace("**/", "")) or p.startswith(pat + "/"):
                ignored.append("%s (%s)" % (src, pat))
say(not missing and not ignored, "every COPY source exists and is not .dockerignored (missing %s, ignored %s)" % (missing, ignored))
EOF
while read -r verdict what; do
	case $verdict in
	PASS) pass "Dockerfile: $what" ;;
	FAIL) fail "Dockerfile: $what" ;;
	PKGS) echo "$what" >>"$T/pkgs" ;;
	*) echo "# $verdict $what" ;;
	esac
done <"$T/dockerfile.check"

# Every package exists in Debian 12 (this machine is Debian 12: ask its apt).
if grep -q 'VERSION_CODENAME=bookworm' /etc/os-release 2>/dev/null && command -v apt-cache >/dev/null; then
	if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' 2>/dev/null)" ]; then
		apt-get update -q >/dev/null 2>&1
	fi
	missing=""
	for p in $(tr ' ' '\n' <"$T/pkgs" | sort -u); do
		apt-cache show "$p" 2>/dev/null | grep -q '^Package:' || missing="$missing $p"
	done
	check "every package the Dockerfile installs exists in Debian 12 ($(tr '\n' ' ' <"$T/pkgs" | wc -w) names;${missing:- none} missing)" -- \
		[ -z "$missing" ]
else
	skip "not a Debian 12 machine: cannot ask apt about Debian 12's packages"
fi

# --- entry-point scripts ---------------------------------------------------------------------
syntax=""
for f in "$D"/*.sh; do
	case $(head -n 1 "$f") in
	*bash*) bash -n "$f" 2>>"$T/syntax" || syntax="$syntax $(basename "$f")" ;;
	*) sh -n "$f" 2>>"$T/syntax" || syntax="$syntax $(basename "$f")" ;;
	esac
	[ -x "$f" ] || syntax="$syntax $(basename "$f")(not executable)"
done
if command -v shellcheck >/dev/null 2>&1; then
	shellcheck -S warning "$D"/*.sh >>"$T/syntax" 2>&1 || syntax="$syntax shellcheck"
fi
check "docker/*.sh are executable and pass sh -n / bash -n (and shellcheck -S warning)${syntax:+:$syntax}" -- [ -z "$syntax" ]
[ -z "$syntax" ] || diag <"$T/syntax"

# make-hostfile.sh, with a stand-in resolver: node1/node2 one address each, "node" scaled to
# two replicas, "ghost" unknown.
cat >"$T/getent" <<'EOF'
#!/bin/sh
case $2 in
node1) echo "172.20.0.3      STREAM node1" ;;
node2) echo "172.20.0.4      STREAM node2"; echo "172.20.0.4      DGRAM" ;;
node) echo "172.20.0.7      STREAM node"; echo "172.20.0.8      STREAM" ;;
*) exit 2 ;;
esac
EOF
chmod +x "$T/getent"
GETENT=$T/getent "$D/make-hostfile.sh" --head head --slots 2 node1 node2 node >"$T/hostfile" 2>"$T/hostfile.err"
rc=$?
printf 'head slots=1\nnode1 slots=2\nnode2 slots=2\n172.20.0.7 slots=2\n172.20.0.8 slots=2\n' >"$T/hostfile.want"
check "make-hostfile: head first with 1 slot, one line per node (addresses for a scaled service)" -- \
	eval "[ $rc -eq 0 ] && diff <(grep -v '^#' '$T/hostfile') '$T/hostfile.want' >/dev/null"
GETENT=$T/getent "$D/make-hostfile.sh" --head head node1 ghost >"$T/hostfile2" 2>"$T/hostfile2.err"
rc=$?
check "make-hostfile: an unknown service is an error naming it (exit $rc: $(cat "$T/hostfile2.err"))" -- \
	eval "[ $rc -eq 1 ] && grep -q ghost '$T/hostfile2.err'"

# wait-ssh.sh: a closed port gives up at the deadline, naming the host.
closed=$(free_port)
t0=$(date +%s.%N)
"$D/wait-ssh.sh" --deadline 2 --port "$closed" 127.0.0.1 2>"$T/wait.err"
rc=$?
took=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
check "wait-ssh: closed port, --deadline 2 -> exit 1 after ${took}s naming the host ($(cat "$T/wait.err"))" -- \
	eval "[ $rc -eq 1 ] && python3 -c 'import sys; sys.exit(not 2 <= $took < 8)' && grep -q '127.0.0.1' '$T/wait.err'"

# wait-ssh.sh --min: a host that never answers does not hold back the ones that do.
open_port=$(free_port)
python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(16); time.sleep(30)' "$open_port" &
PIDS="$PIDS $!"
until timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$0"' "$open_port" 2>/dev/null; do sleep 0.1; done
t0=$(date +%s.%N)
got=$("$D/wait-ssh.sh" --deadline 20 --min 1 --grace 1 --print "127.0.0.1:$closed" "127.0.0.1:$open_port" 2>"$T/wait3.err")
rc=$?
took=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))")
check "wait-ssh --min 1 --grace 1: goes on after ${took}s with the host that answers (exit $rc, printed '$got'), naming the other ($(cat "$T/wait3.err"))" -- \
	eval "[ $rc -eq 0 ] && [ '$got' = '127.0.0.1:$open_port' ] && grep -q '127.0.0.1:$closed' '$T/wait3.err' && python3 -c 'import sys; sys.exit(not $took < 8)'"
"$D/wait-ssh.sh" --deadline 2 --min 2 "127.0.0.1:$closed" "127.0.0.1:$open_port" 2>/dev/null
rc=$?
check "wait-ssh --min 2 with one host answering: exit $rc (1) at the deadline" -- [ "$rc" -eq 1 ]

# ssh-keys.sh: idempotent, private keys private, one key when several containers start at once.
mkdir -p "$T/keys1" "$T/home1"
HOME=$T/home1 "$D/ssh-keys.sh" "$T/keys1" "$T/home1/.ssh" 2>/dev/null
(cd "$T" && find keys1 home1 -type f ! -name .lock -exec md5sum {} + | sort) >"$T/sum1"
HOME=$T/home1 "$D/ssh-keys.sh" "$T/keys1" "$T/home1/.ssh" 2>/dev/null
(cd "$T" && find keys1 home1 -type f ! -name .lock -exec md5sum {} + | sort) >"$T/sum2"
perms=$(stat -c '%a %n' "$T/keys1/id_ed25519" "$T/keys1/ssh_host_ed25519_key" "$T/keys1" "$T/home1/.ssh" | awk '$1 != 600 && $1 != 700')
check "ssh-keys: a second start changes nothing; keys 600, directories 700${perms:+ (bad: $perms)}" -- \
	eval "cmp -s '$T/sum1' '$T/sum2' && [ -z '$perms' ] && [ \$(wc -l <'$T/keys1/authorized_keys') -eq 1 ]"
mkdir -p "$T/keys2"
for i in 1 2 3; do
	mkdir -p "$T/home2.$i"
	HOME=$T/home2.$i "$D/ssh-keys.sh" "$T/keys2" "$T/home2.$i/.ssh" 2>>"$T/keys2.log" &
done
wait
fps=$(for f in "$T"/keys2/*.pub; do ssh-keygen -lf "$f"; done | wc -l)
made=$(grep -c 'made the cluster.s client key' "$T/keys2.log")
check "ssh-keys: three containers starting together make one client key between them (made $made time(s))" -- \
	eval "[ $made -eq 1 ] && [ $fps -eq 2 ] && ssh-keygen -y -f '$T/keys2/id_ed25519' | cut -d' ' -f1,2 | cmp -s - <(cut -d' ' -f1,2 '$T/keys2/id_ed25519.pub')"

# A real login through the generated configuration: an unprivileged sshd (as in the render
# node containers) on 127.0.0.1, a throwaway user "render" that exists only in a private mount
# namespace, then wait-ssh --ssh, the node health check, and the head's entry point with a
# stand-in mpirun and socat that print what they were given.
if ! command -v sshd >/dev/null 2>&1 && [ ! -x /usr/sbin/sshd ]; then
	for i in 1 2 3 4 5; do skip "openssh-server not installed: no sshd to log in to"; done
elif [ "$(id -u)" -ne 0 ] || ! unshare -m true 2>/dev/null; then
	for i in 1 2 3 4 5; do skip "needs root and unshare -m for a throwaway user"; done
else
	mkdir -p "$T/fakebin"
	printf '#!/bin/sh\necho "mpirun $*" >>"%s/fakebin/mpirun.args"\n' "$T" >"$T/fakebin/mpirun"
	printf '#!/bin/sh\necho "socat $*" >>"%s/fakebin/socat.args"\n' "$T" >"$T/fakebin/socat"
	cp "$TOP/scripts/drender-mpirun" "$T/fakebin/" # the image has it next to entrypoint.sh
	chmod 755 "$T/fakebin/mpirun" "$T/fakebin/socat" "$T/fakebin/drender-mpirun"
	cat >"$T/inner.sh" <<'EOF'
#!/bin/bash
# Runs in a private mount namespace: a "render" user exists here only.
T=$1 D=$2 PORT=$3
cp /etc/passwd /etc/shadow /etc/group "$T/"
echo "render:x:4242:4242::$T/home:/bin/bash" >>"$T/passwd"
echo "render:!:20000:0:99999:7:::" >>"$T/shadow"
echo "render:x:4242:" >>"$T/group"
mount --bind "$T/passwd" /etc/passwd && mount --bind "$T/shadow" /etc/shadow &&
	mount --bind "$T/group" /etc/group || { echo "FAIL cannot bind-mount a private /etc/passwd"; exit 0; }
mkdir -p "$T/home" "$T/keys"
chown 4242:4242 "$T/home" "$T/keys" "$T/fakebin"
as_render() {
	setpriv --reuid 4242 --regid 4242 --clear-groups \
		env -i HOME="$T/home" PATH="$T/fakebin:/usr/bin:/bin:/usr/sbin" DRENDER_SSH_PORT="$PORT" \
		DRENDER_KEYS="$T/keys" "$@"
}
as_render "$D/ssh-keys.sh" 2>/dev/null
# The container's /keys sits under /, here under /tmp (world-writable): relax StrictModes,
# and listen on loopback only.
printf 'ListenAddress 127.0.0.1\nStrictModes no\n' >>"$T/home/.ssh/sshd_config"
# Started directly (not through the function) so that $! is sshd itself.
setpriv --reuid 4242 --regid 4242 --clear-groups env -i HOME="$T/home" \
	/usr/sbin/sshd -D -e -f "$T/home/.ssh/sshd_config" 2>"$T/sshd.log" &
sshd=$!
echo "SSHD $sshd"
as_render "$D/wait-ssh.sh" --deadline 10 --ssh localhost 2>"$T/wait2.err"
rc=$?
[ $rc -eq 0 ] && echo "PASS wait-ssh --ssh: sshd up and the cluster key logs in" ||
	echo "FAIL wait-ssh --ssh exit $rc: $(cat "$T/wait2.err") $(tail -n 3 "$T/sshd.log")"
out=$(as_render ssh localhost 'echo "$(id -un) via ssh"' 2>&1)
[ "$out" = "render via ssh" ] && echo "PASS ssh with the generated config runs a command as render (no password, host key checked)" ||
	echo "FAIL ssh login: $out"
as_render env DRENDER_ROLE=node "$D/healthcheck.sh" && echo "PASS node health check: sshd port answers" ||
	echo "FAIL node health check"
# The head's entry point, up to its mpirun (a stand-in, run by drender-mpirun): waits, writes the hostfile, serves on
# loopback + forwarder without a token.
as_render env DRENDER_ROLE=head DRENDER_NODES="localhost" DRENDER_WAIT_SECS=10 \
	"$D/entrypoint.sh" --verbose >"$T/entry.out" 2>&1
rc=$?
args=$(cat "$T/fakebin/mpirun.args" 2>/dev/null)
hf=$(grep -v '^#' "$T/home/hostfile" 2>/dev/null | tr '\n' ' ')
case "$rc|$args|$hf" in
"0|mpirun --enable-recovery -x DRENDER_STATUS_FILE --mca orte_abort_on_non_zero_status 0 --hostfile $T/home/hostfile -np 2 --bind-to none drender --serve --scene "*" --blend-root /blend --output-root /output --listen 127.0.0.1:4000 --verbose|"*"slots=1 localhost slots=1 ")
	echo "PASS head entry point: hostfile (head + localhost), drender-mpirun (mpirun --enable-recovery) -np 2 drender --serve --listen 127.0.0.1:4000 (no token)" ;;
*) echo "FAIL head entry point (exit $rc): $args / hostfile: $hf"; sed 's/^/#  /' "$T/entry.out" ;;
esac
kill "$sshd" 2>/dev/null
wait "$sshd" 2>/dev/null
EOF
	chmod 755 "$T/inner.sh"
	port=$(free_port)
	timeout 60 unshare -m "$T/inner.sh" "$T" "$D" "$port" >"$T/inner.out" 2>&1
	nres=0
	while read -r verdict what; do
		case $verdict in
		PASS) pass "$what"; nres=$((nres + 1)) ;;
		FAIL) fail "$what"; nres=$((nres + 1)) ;;
		SSHD) ;;
		*) echo "# $verdict $what" ;;
		esac
	done <"$T/inner.out"
	while [ "$nres" -lt 4 ]; do fail "ssh part did not report (see above)"; nres=$((nres + 1)); done
	# Whatever happened inside, no sshd of ours may be left.
	sshd=$(sed -n 's/^SSHD //p' "$T/inner.out")
	[ -n "$sshd" ] && kill "$sshd" 2>/dev/null
	left=$(pgrep -f "$T/" | tr '\n' ' ')
	check "no sshd or other process of the ssh part left (${left:-none})" -- [ -z "$left" ]
fi

# The head's health check fails while nothing answers on its port.
DRENDER_ROLE=head DRENDER_HTTP_PORT=$(free_port) "$D/healthcheck.sh" 2>/dev/null
check "head health check fails when /health does not answer" -- [ $? -ne 0 ]

[ "$T_FAILED" -eq 0 ]
