#!/bin/bash
# Build drender's container image with podman, from Debian's mirror alone, cached between runs.
#
# Usage: scripts/container-image.sh [--base-only | --force]
#   Makes the base image localhost/debian:bookworm-slim with debootstrap (no registry needed),
#   then builds docker/Dockerfile as localhost/drender:latest, unless the image already there
#   was built from the same inputs (docker/, Makefile, include/, src/, scripts/embed.sh, the
#   demo scene's scripts, .dockerignore and the base image): their hash is the image's label
#   org.drender.inputs. --force rebuilds anyway; --base-only makes the base image only.
# Environment:
#   DRENDER_CI_CACHE  cache directory outside the clone (default /var/cache/drender-ci): the
#                     podman configuration, the base image's tarball, the build log
#   CONTAINERS_CONF   podman's configuration (default: $DRENDER_CI_CACHE/containers.conf,
#                     written here when missing: runc, cgroupfs, no default ulimits; see README.md)
#   DRENDER_UID       the image's render user (default 1000)
# Prints one line: "image localhost/drender:latest <built|cached> in Ns, SIZE".
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${DRENDER_CI_CACHE:-/var/cache/drender-ci}
BASE=localhost/debian:bookworm-slim
IMAGE=localhost/drender:latest
force=0
base_only=0
case ${1:-} in
--force) force=1 ;;
--base-only) base_only=1 ;;
'') ;;
*) echo "usage: $0 [--base-only | --force]" >&2; exit 2 ;;
esac
log() { echo "container-image: $*" >&2; }

mkdir -p "$CACHE"
# One build at a time per cache (two test runs would share the base's scratch directory).
exec 9>"$CACHE/.lock"
flock -w 900 9 || { log "waited 900 s for $CACHE/.lock"; exit 1; }
# podman's configuration: the one given, or ours in the cache, written when missing (also when a
# caller exported CONTAINERS_CONF=$CACHE/containers.conf before the file existed: a fresh machine).
export CONTAINERS_CONF=${CONTAINERS_CONF:-$CACHE/containers.conf}
if [ ! -s "$CONTAINERS_CONF" ]; then
	if [ "$CONTAINERS_CONF" != "$CACHE/containers.conf" ]; then
		log "CONTAINERS_CONF=$CONTAINERS_CONF: no such file (unset it to use $CACHE/containers.conf)"
		exit 1
	fi
	printf '%s\n' '# podman settings for drender'"'"'s container tests (see README.md, "Podman").' \
		'[containers]' 'default_ulimits = []' '[engine]' 'runtime = "runc"' \
		'cgroup_manager = "cgroupfs"' >"$CONTAINERS_CONF.tmp"
	mv "$CONTAINERS_CONF.tmp" "$CONTAINERS_CONF"
fi
t0=$SECONDS

# The base: Debian 12 minbase from the mirror, kept as a tarball so that a wiped image store
# does not mean a second debootstrap.
if ! podman image exists "$BASE"; then
	if [ ! -s "$CACHE/bookworm-minbase.tar" ]; then
		log "debootstrap --variant=minbase bookworm (once; kept in $CACHE)"
		rm -rf "$CACHE/rootfs.tmp"
		debootstrap --variant=minbase bookworm "$CACHE/rootfs.tmp" \
			"${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$CACHE/debootstrap.log" 2>&1 ||
			{ log "debootstrap failed; see $CACHE/debootstrap.log"; exit 1; }
		# Like Debian's own slim images: no package lists, caches, documentation or
		# translations in the base layer (a later layer cannot make it smaller).
		tar -C "$CACHE/rootfs.tmp" --exclude='./var/lib/apt/lists/*' --exclude='./var/cache/apt/*' \
			--exclude='./usr/share/doc/*' --exclude='./usr/share/man/*' --exclude='./usr/share/info/*' \
			--exclude='./usr/share/locale/*' -c . >"$CACHE/bookworm-minbase.tar.tmp"
		mv "$CACHE/bookworm-minbase.tar.tmp" "$CACHE/bookworm-minbase.tar"
		rm -rf "$CACHE/rootfs.tmp"
	fi
	podman import --quiet "$CACHE/bookworm-minbase.tar" "$BASE" >/dev/null
	log "imported $BASE"
fi
[ "$base_only" = 1 ] && exit 0

# The inputs: every file the Dockerfile can copy, plus the base image's id.
inputs=$(
	cd "$ROOT"
	{
		podman image inspect --format '{{.Id}}' "$BASE"
		echo "uid ${DRENDER_UID:-1000}"
		find docker include src Makefile scripts/embed.sh blend/make_demo.py blend/scene_kit.py \
			.dockerignore -type f ! -name '*.md' -print0 | sort -z | xargs -0 sha256sum
	} | sha256sum | cut -c1-16
)
have=$(podman image inspect --format '{{index .Config.Labels "org.drender.inputs"}}' "$IMAGE" 2>/dev/null || true)
if [ "$force" = 0 ] && [ "$have" = "$inputs" ]; then
	how=cached
else
	old=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
	log "building $IMAGE (inputs $inputs${have:+, was $have}); log in $CACHE/build.log"
	(cd "$ROOT" && podman build --network host --build-arg "DEBIAN_IMAGE=$BASE" \
		--build-arg "DRENDER_UID=${DRENDER_UID:-1000}" --label "org.drender.inputs=$inputs" \
		-t "$IMAGE" -f docker/Dockerfile .) >"$CACHE/build.log" 2>&1 ||
		{ log "podman build failed:"; tail -n 20 "$CACHE/build.log" >&2; exit 1; }
	how=built
	# The replaced image would pile up build after build (its layers stay cached as long as the
	# new image shares them; the build stage's layers stay for the next build).
	[ -n "$old" ] && [ "$old" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ] &&
		{ podman rmi "$old" >/dev/null 2>&1 || true; }
fi
size=$(podman image inspect --format '{{.Size}}' "$IMAGE")
echo "image $IMAGE $how in $((SECONDS - t0))s, $((size / 1000000)) MB"
