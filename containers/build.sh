#!/usr/bin/env bash
# Build the serving image from the Dockerfile with podman.
#
#   containers/build.sh        # environment: see common.sh; UV_VERSION from the Makefile
#
# The image packages models/ as it is: run the pipeline (make repro, or
# dvc pull) first. A localhost/ base image is built first if missing.
set -euo pipefail
# shellcheck source=containers/common.sh source-path=SCRIPTDIR/..
source "$(dirname "$0")/common.sh"
cd "$REPO_ROOT"

for file in models/model.onnx models/model_card.json models/drift_profile.json; do
    [[ -f $file ]] || die "$file is missing: run the pipeline first (make repro, or dvc pull)"
done
# Only the model dvc.lock records, pinned in the image (docs/deploy.md: provenance).
pin=$("$REPO_ROOT/.venv/bin/churn" model-pin --model-dir models) \
    || die "models/ is not the model dvc.lock records: refusing to package it"
# The run record (train writes it; none after a dvc pull): the Dockerfile copies the folder.
mkdir -p reports/run

ensure_tools podman "${PODMAN_RUNTIME:-runc}"
if [[ $PYTHON_IMAGE == localhost/* ]]; then
    "$REPO_ROOT/containers/base-image.sh" "$PYTHON_IMAGE"
fi

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
say "building $IMAGE on $PYTHON_IMAGE (model ${pin:0:12}…)"
# --format docker: the OCI image format has no HEALTHCHECK.
# --isolation chroot: RUN steps need no OCI runtime, user namespaces or
# container network (they use the host's, to reach PyPI).
podman build \
    --format docker \
    --isolation chroot \
    --build-arg "PYTHON_IMAGE=$PYTHON_IMAGE" \
    ${UV_VERSION:+--build-arg "UV_VERSION=$UV_VERSION"} \
    --build-arg "VERSION=$version" \
    --build-arg "REVISION=$revision" \
    --build-arg "MODEL_SHA256=$pin" \
    --tag "$IMAGE" \
    .
say "built $IMAGE: $(podman image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=si)B"
