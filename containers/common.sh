# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this
# Shared by the containers/*.sh scripts (sourced, not run).
#
# Environment (all optional):
#   IMAGE            the serving image to build and test   (localhost/churn-serving:latest)
#   PYTHON_IMAGE     base image of the Dockerfile           (localhost/python:3.11-slim)
#                    a localhost/ name is built here by base-image.sh; pass
#                    python:3.11-slim to use the official image from a registry
#   PODMAN_STORAGE_DRIVER, PODMAN_RUNTIME                   (overlay, runc)

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=${IMAGE:-localhost/churn-serving:latest}
PYTHON_IMAGE=${PYTHON_IMAGE:-localhost/python:3.11-slim}

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Every podman call gets the same storage driver and OCI runtime (tested:
# overlay and runc, as root, cgroups v1); override them for other hosts.
podman() {
    command podman --storage-driver "${PODMAN_STORAGE_DRIVER:-overlay}" \
        --runtime "${PODMAN_RUNTIME:-runc}" "$@"
}

# For `podman run`: podman's default rlimits (nofile 1048576, ...) are above
# what some hosts (VMs, nested containers) let a container set, and the
# container then fails to start with "error setting rlimit"; so the limits
# are set here, below such hosts' usual hard limit (20,000 on the test host:
# `ulimit -Hn`).
# Open files (CONTAINER_NOFILE, 16384): every client connection is one file
# descriptor. At 1,024, 1,100 slow connections once blocked every other
# client (issue 13); the service now closes a request that has not arrived
# in CHURN_REQUEST_TIMEOUT_S (10 s), but an attacker who opens connections
# faster than that still needs descriptors to spend. Raise it where the host
# allows (docs/deploy.md).
CONTAINER_NOFILE=${CONTAINER_NOFILE:-16384}
RUN_LIMITS=(--ulimit "nofile=$CONTAINER_NOFILE:$CONTAINER_NOFILE" --ulimit nproc=1024:1024)

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

# ensure_tools COMMAND...: install the missing ones from Debian's packages
# (each command here is also its package's name).
ensure_tools() {
    local missing=() tool
    for tool in "$@"; do
        type -P "$tool" >/dev/null || missing+=("$tool")  # a program, not the podman function
    done
    ((${#missing[@]} == 0)) && return 0
    command -v apt-get >/dev/null ||
        die "missing ${missing[*]}: install them with your package manager"
    say "installing ${missing[*]} with apt-get"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The Debian mirror apt already uses (deb822 .sources or one-line .list files).
debian_mirror() {
    local uris
    uris=$({
        awk '$1 == "URIs:" { for (i = 2; i <= NF; i++) print $i }' /etc/apt/sources.list.d/*.sources
        awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /:\/\//) { print $i; break } }' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list
    } 2>/dev/null || true)
    grep -m1 -E '/debian/?$' <<<"$uris" || echo "http://deb.debian.org/debian"
}

# registry_login IMAGE: log in to IMAGE's registry when REGISTRY_PASSWORD is
# set (REGISTRY_USER, default $USER); the password goes through stdin.
registry_login() {
    local registry=${1%%/*}
    [[ -n ${REGISTRY_PASSWORD:-} ]] || return 0
    say "logging in to $registry as ${REGISTRY_USER:-$USER}"
    printf '%s' "$REGISTRY_PASSWORD" |
        podman login --username "${REGISTRY_USER:-$USER}" --password-stdin "$registry" >/dev/null
}
