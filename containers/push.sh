#!/usr/bin/env bash
# Push the serving image to its registry, under its own tag and extra ones.
#
#   containers/push.sh          # IMAGE=ghcr.io/owner/repo:SHA EXTRA_TAGS="latest"
#
# Logs in first when REGISTRY_PASSWORD is set (REGISTRY_USER, default: the
# login of whoever runs it); the password goes through stdin, never argv.
# With DIGEST_REF_FILE set, writes the pushed image's reference by digest
# (REPOSITORY@sha256:...) there: what the Kubernetes target deploys.
set -euo pipefail
# shellcheck source=containers/common.sh source-path=SCRIPTDIR/..
source "$(dirname "$0")/common.sh"

[[ $IMAGE != localhost/* ]] || die "IMAGE=$IMAGE is local: name a registry (e.g. ghcr.io/OWNER/REPO:TAG)"
podman image exists "$IMAGE" || die "$IMAGE is not built: run make container-build (or container-test) first"
repository=${IMAGE%:*}

registry_login "$IMAGE"

say "pushing $IMAGE"
digest_file=$(mktemp)
trap 'rm -f "$digest_file"' EXIT
# The digest the registry stored (the local image's may differ: compression).
podman push --digestfile "$digest_file" "$IMAGE"
for tag in ${EXTRA_TAGS:-}; do
    say "pushing $repository:$tag"
    podman tag "$IMAGE" "$repository:$tag"
    podman push "$repository:$tag"
done
digest=$(cat "$digest_file")
say "pushed $repository@$digest"
if [[ -n ${DIGEST_REF_FILE:-} ]]; then
    echo "$repository@$digest" >"$DIGEST_REF_FILE"
fi
