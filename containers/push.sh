#!/usr/bin/env bash
# Push the serving image to its registry, under its own tag and extra ones.
#
#   containers/push.sh          # IMAGE=ghcr.io/owner/repo:SHA EXTRA_TAGS="latest"
#
# Logs in first when REGISTRY_PASSWORD is set (REGISTRY_USER, default: the
# login of whoever runs it); the password goes through stdin, never argv.
set -euo pipefail
# shellcheck source=containers/common.sh source-path=SCRIPTDIR/..
source "$(dirname "$0")/common.sh"

[[ $IMAGE != localhost/* ]] || die "IMAGE=$IMAGE is local: name a registry (e.g. ghcr.io/OWNER/REPO:TAG)"
podman image exists "$IMAGE" || die "$IMAGE is not built: run make container-build (or container-test) first"
repository=${IMAGE%:*}

registry_login "$IMAGE"

say "pushing $IMAGE"
podman push "$IMAGE"
for tag in ${EXTRA_TAGS:-}; do
    say "pushing $repository:$tag"
    podman tag "$IMAGE" "$repository:$tag"
    podman push "$repository:$tag"
done
digest=$(podman image inspect --format '{{.Digest}}' "$IMAGE")
say "pushed $repository@$digest"
