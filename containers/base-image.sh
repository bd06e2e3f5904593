#!/usr/bin/env bash
# Build a local stand-in for the official python:3.11-slim image, for hosts
# that can reach Debian's and PyPI's mirrors but no container registry.
#
#   containers/base-image.sh [TAG]     # default: $PYTHON_IMAGE (localhost/python:3.11-slim)
#
# Debian 12 (bookworm), whose python3 is 3.11, with python3-venv and
# ca-certificates, imported as one layer. Nothing is done if TAG exists, so
# debootstrap runs once per machine. Needs root (debootstrap, chroot).
set -euo pipefail
# shellcheck source=containers/common.sh source-path=SCRIPTDIR/..
source "$(dirname "$0")/common.sh"

tag=${1:-$PYTHON_IMAGE}
suite=bookworm

ensure_tools podman "${PODMAN_RUNTIME:-runc}"
if podman image exists "$tag"; then
    say "base image $tag exists"
    exit 0
fi
[[ $EUID -eq 0 ]] || die "building the base image needs root (debootstrap)"
ensure_tools debootstrap

mirror=${DEBIAN_MIRROR:-$(debian_mirror)}
rootfs=$(mktemp -d "${TMPDIR:-/tmp}/python-rootfs.XXXXXX")
cleanup() {
    # debootstrap mounts /proc and /sys in the target; a failed run may leave them.
    awk -v root="$rootfs/" 'index($2, root) == 1 { print $2 }' /proc/mounts |
        sort -r | xargs -r umount -l
    rm -rf --one-file-system "$rootfs"
}
trap cleanup EXIT

say "debootstrap $suite from $mirror (a few minutes, once)"
debootstrap --variant=minbase --include=ca-certificates,python3,python3-venv,python-is-python3 \
    "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2
    die "debootstrap failed (full log: $rootfs.log)"
}
rm -f "$rootfs.log"

# Trust what this host trusts (e.g. a TLS-inspecting proxy's CA), so that pip
# inside the build can reach PyPI; pip and uv are pointed at it below.
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
# Slim, like the official image: no package lists, downloaded .debs or docs.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/* \
    "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*

say "importing $tag"
tar --numeric-owner -C "$rootfs" -c . | podman import --quiet \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'LABEL org.opencontainers.image.description="Local stand-in for python:3.11-slim (Debian bookworm python3)"' \
    --change 'CMD ["python3"]' \
    - "$tag" >/dev/null
podman run --rm "${RUN_LIMITS[@]}" "$tag" python3 -c 'import sys, venv, ssl; print("python", sys.version.split()[0])'
