#!/usr/bin/env bash
# Smoke-test the serving image: build it, run it on 127.0.0.1, and check that
# it becomes ready, predicts with the model in models/, passes its own
# HEALTHCHECK, runs as non-root and holds none of the training stack.
# The container is removed at the end, whatever happens.
#
#   containers/test.sh          # environment: see common.sh; READY_TIMEOUT (60 s)
set -euo pipefail
# shellcheck source=containers/common.sh source-path=SCRIPTDIR/..
source "$(dirname "$0")/common.sh"
cd "$REPO_ROOT"

# The host's project env runs `churn smoke` and the HTTP readiness poll.
python=$REPO_ROOT/.venv/bin/python
[[ -x $python ]] || die "$python not found: run make install"
ready_timeout=${READY_TIMEOUT:-60}

"$REPO_ROOT/containers/build.sh"

name=churn-serving-test-$$
podman_errors=$(mktemp)
cleanup() {
    local status=$?
    if ((status != 0)) && podman container exists "$name"; then
        echo "--- container log (last 40 lines) ---" >&2
        podman logs --tail 40 "$name" >&2 || true
    fi
    # Without systemd, podman also logs that it cannot remove the health timer.
    podman rm --force --time 5 "$name" >/dev/null 2>&1 || true
    rm -f "$podman_errors"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM  # so that Ctrl-C also removes the container

now_ms() { date +%s%3N; }
http_ok() { "$python" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1" 2>/dev/null; }

# As production should run it: read-only root file system, no capabilities.
# The port is published on 127.0.0.1 only; podman picks a free one. podman's
# stderr is shown on failure only: without systemd it also complains that it
# cannot schedule the health checks.
say "starting $IMAGE"
start=$(now_ms)
podman run --detach --name "$name" "${RUN_LIMITS[@]}" \
    --read-only --cap-drop all --security-opt no-new-privileges \
    --publish 127.0.0.1::8000 \
    "$IMAGE" >/dev/null 2>"$podman_errors" || { cat "$podman_errors" >&2; die "podman run failed"; }
address=$(podman port "$name" 8000/tcp)
[[ $address == 127.0.0.1:* ]] || die "port 8000 is published on '$address', not on 127.0.0.1"
url=http://$address

say "waiting for $url/ready (at most ${ready_timeout}s)"
deadline=$((SECONDS + ready_timeout))
until http_ok "$url/ready"; do
    if [[ $(podman inspect --format '{{.State.Running}}' "$name") != true ]]; then
        die "the container exited (code $(podman inspect --format '{{.State.ExitCode}}' "$name"))"
    fi
    ((SECONDS < deadline)) || die "not ready after ${ready_timeout}s"
    sleep 0.2
done
ready_ms=$(($(now_ms) - start))
say "ready $((ready_ms / 1000)).$(printf '%03d' $((ready_ms % 1000)))s after podman run"

say "smoke test: /ready, /model is the model in models/, one prediction"
"$REPO_ROOT/.venv/bin/churn" smoke "$url" --card models/model_card.json --ready-timeout 5

say "checking the image pins the model it packages"
pinned=$(podman exec "$name" printenv CHURN_MODEL_SHA256) || die "the image sets no CHURN_MODEL_SHA256"
[[ $pinned == "$("$REPO_ROOT/.venv/bin/churn" model-pin --model-dir models)" ]] \
    || die "the image pins ${pinned:0:12}…, not the model in models/"
echo "    CHURN_MODEL_SHA256=${pinned:0:12}…"

say "checking the image's HEALTHCHECK"
podman healthcheck run "$name" >/dev/null 2>&1 || die "the HEALTHCHECK command failed (or the image has none)"

say "checking the service runs as non-root"
uid=$(podman exec "$name" awk '/^Uid:/ { print $3 }' /proc/1/status)  # effective uid of PID 1
[[ $uid =~ ^[0-9]+$ && $uid -ne 0 ]] || die "the service runs as uid '$uid'"
echo "    uid $uid"

say "checking the image holds no training stack"
training=$(podman exec "$name" python -c '
import importlib.metadata as metadata
installed = {d.metadata["Name"].lower().replace("_", "-") for d in metadata.distributions()}
training = {"dvc", "great-expectations", "matplotlib", "mlflow", "mlflow-skinny", "onnx",
            "pandas", "pyarrow", "scikit-learn", "skl2onnx", "skops"}
print(" ".join(sorted(installed & training)))')
[[ -z $training ]] || die "the image contains: $training"

say "all checks passed ($IMAGE, $(podman image inspect --format '{{.Size}}' "$IMAGE" | numfmt --to=si)B)"
