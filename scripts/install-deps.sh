#!/bin/sh
# Install the Debian 12 packages one set of drender's uses needs; do nothing when all are there.
#
# Usage: scripts/install-deps.sh [SET...]   (default: test)
#   render  build drender and render with it (make, make demo): compiler, Open MPI, the libraries,
#           Blender, ffmpeg for --video
#   test    render, plus everything make check runs: the test tools, the still comparison, the
#           fuzzer, the dashboard's browser, Slurm, the container tools (make check)
#   bench   render, plus what make bench plots with
#   all     every set
set -eu

# Build and run.
RENDER="build-essential pkg-config openmpi-bin libopenmpi-dev libcjson-dev libmicrohttpd-dev libsqlite3-dev blender"
# Staging and the node cache: SHA-256 from nettle.
RENDER="$RENDER nettle-dev"
# --video: ffmpeg encodes the frames and ffprobe checks the result.
RENDER="$RENDER ffmpeg"

# --still tests: oiiotool compares the merged still with a single render, in float.
TEST="openimageio-tools"
# Tests and tools: prove (perl), curl, python3 for the fake Blender, clang-format, iproute2 for
# network namespaces, procps for ps/pgrep, openssl for the HTTPS test's certificate.
TEST="$TEST perl curl python3 clang-format iproute2 procps openssl"
# The request-body fuzzer (clang's libFuzzer) and the HTTP load figure (wrk).
TEST="$TEST clang libclang-rt-14-dev wrk"
# The dashboard's browser test: headless Chromium driven by Selenium.
TEST="$TEST chromium chromium-driver python3-selenium"
# Deployment tests: a single-node Slurm cluster, and docker-compose to validate the Compose file.
TEST="$TEST slurm-wlm munge docker-compose openssh-server openssh-client socat"
# The container tests (tests/e2e/container.sh): podman with runc, netavark and aardvark-dns
# (the Compose network and its service names), iptables (published ports), and debootstrap
# for a base image from Debian's mirror (no image registry needed).
TEST="$TEST podman runc netavark aardvark-dns iptables debootstrap"

# make bench: its efficiency plot, and the HTTP load figure.
BENCH="gnuplot-nox wrk curl python3"

PKGS=""
[ $# -gt 0 ] || set -- test
for set in "$@"; do
	case $set in
	render) PKGS="$PKGS $RENDER" ;;
	test) PKGS="$PKGS $RENDER $TEST" ;;
	bench) PKGS="$PKGS $RENDER $BENCH" ;;
	all) PKGS="$PKGS $RENDER $TEST $BENCH" ;;
	*)
		echo "install-deps: unknown set '$set' (known: render, test, bench, all)" >&2
		exit 2
		;;
	esac
done

missing=""
for p in $PKGS; do
	case " $missing " in *" $p "*) continue ;; esac
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
if [ "$(id -u)" -eq 0 ]; then
	SUDO=""
elif command -v sudo >/dev/null 2>&1; then
	SUDO="sudo"
else
	echo "install-deps: missing packages:$missing; run this script as root or install sudo" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Packages such as openssh-server, munge and slurm would start their daemons on install; the tests
# start their own. Where no policy says otherwise, forbid service starts for the install only.
policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null && $SUDO chmod 755 "$policy" &&
		added_policy=1
fi
status=0
$SUDO apt-get update -q >/dev/null || status=$?
if [ "$status" -eq 0 ]; then
	# shellcheck disable=SC2086
	$SUDO apt-get install -y -q --no-install-recommends $missing || status=$?
fi
[ -n "$added_policy" ] && $SUDO rm -f "$policy"
exit "$status"
