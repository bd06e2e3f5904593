#!/usr/bin/env bash
# Blue/green deploy of the serving image. This file holds the steps every
# target shares; deploy/targets/$DEPLOY_TARGET.sh holds the ones that differ
# (how a slot is started, how traffic is switched). See docs/deploy.md.
#
#   deploy/deploy.sh deploy IMAGE   start IMAGE in the idle slot, smoke-test it there,
#                                   switch the traffic to it, check the public address;
#                                   the old slot keeps running for an immediate rollback
#   deploy/deploy.sh rollback       send the traffic back to the other slot (checked first)
#   deploy/deploy.sh status         the live slot and the image each slot runs
#   deploy/deploy.sh teardown       remove both slots and the router
#
# Environment:
#   DEPLOY_TARGET    deploy/targets/<name>.sh to use                     (podman)
#   EXPECT_SHA256    the ONNX model SHA-256 the new image must serve     (default: the
#                    pin of MODEL_DIR, models/, when present: its card's onnx_sha256
#                    once `churn model-pin` proved the files are what dvc.lock records)
#   READY_TIMEOUT    seconds a new slot has to become ready              (120)
#   CHURN            the churn command that runs the smoke test          (.venv/bin/churn)
#   CHURN_API_KEY    passed to the slots and used by the smoke test, when the service needs one
#   plus the target's own variables (see the target file).
#
# A target file defines these functions (all output on stdout, messages via say):
#   target_prepare             install and start what the target needs (once; idempotent)
#   target_live                print the live slot, blue or green (nothing before the first deploy)
#   target_start SLOT IMAGE    (re)create SLOT running IMAGE; return once it is started
#   target_slot_url SLOT       print a URL that reaches SLOT directly, bypassing the router
#   target_public_url          print the URL the clients use
#   target_switch SLOT         send all new requests to SLOT without failing any in flight;
#                              return once the switch is in effect
#   target_image SLOT          print the image SLOT runs (nothing when SLOT does not exist)
#   target_logs SLOT           print the slot's recent log (for a failed smoke test)
#   target_teardown            remove the slots and the router
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=containers/common.sh
source "$REPO_ROOT/containers/common.sh"

DEPLOY_TARGET=${DEPLOY_TARGET:-podman}
READY_TIMEOUT=${READY_TIMEOUT:-120}
CHURN=${CHURN:-$REPO_ROOT/.venv/bin/churn}
MODEL_DIR=${MODEL_DIR:-$REPO_ROOT/models}

# A target is a file name in deploy/targets/, never a path (DEPLOY_TARGET=../.. runs nothing).
if [[ ! $DEPLOY_TARGET =~ ^[a-z0-9][a-z0-9_-]*$ ]]; then
    known=("$REPO_ROOT"/deploy/targets/*.sh)
    known=("${known[@]##*/}")
    die "DEPLOY_TARGET '$DEPLOY_TARGET' is not a target name (one of: ${known[*]%.sh})"
fi
target_file=$REPO_ROOT/deploy/targets/$DEPLOY_TARGET.sh
[[ -f $target_file ]] || die "no deploy target '$DEPLOY_TARGET' ($target_file does not exist)"
# shellcheck source=deploy/targets/podman.sh
source "$target_file"

other() { if [[ $1 == blue ]]; then echo green; else echo blue; fi; }

expected_sha() {
    if [[ -n ${EXPECT_SHA256:-} ]]; then
        echo "$EXPECT_SHA256"
    elif [[ -d $MODEL_DIR ]]; then
        (cd "$REPO_ROOT" && "$CHURN" model-pin --model-dir "$MODEL_DIR") \
            || die "$MODEL_DIR is not the model dvc.lock records: nothing deployed"
    fi
}

# smoke URL [SHA]: the same check as the container test and a person after a release.
smoke() {
    local url=$1 sha=${2:-}
    "$CHURN" smoke "$url" --ready-timeout "$READY_TIMEOUT" ${sha:+--expect-sha256 "$sha"}
}

cmd_deploy() {
    local image=${1:?usage: deploy/deploy.sh deploy IMAGE}
    local live idle sha
    target_prepare
    live=$(target_live)
    idle=$(other "${live:-green}")  # the first deploy goes to blue
    sha=$(expected_sha)
    say "deploying $image to the $idle slot (live: ${live:-none})"
    target_start "$idle" "$image"
    say "smoke test of the $idle slot before it gets traffic"
    if ! smoke "$(target_slot_url "$idle")" "$sha"; then
        target_logs "$idle" >&2 || true
        die "the $idle slot failed its smoke test: traffic stays on ${live:-nothing}"
    fi
    say "switching traffic to $idle"
    target_switch "$idle"
    say "smoke test through the public address $(target_public_url)"
    if ! smoke "$(target_public_url)" "$sha"; then
        if [[ -n $live ]]; then
            say "rolling back to $live"
            target_switch "$live"
        fi
        die "the public address failed its smoke test after the switch to $idle"
    fi
    say "live: $idle ($image)${live:+; $live stays ready for deploy/deploy.sh rollback}"
}

cmd_rollback() {
    local live previous
    live=$(target_live)
    [[ -n $live ]] || die "nothing is deployed"
    previous=$(other "$live")
    [[ -n $(target_image "$previous") ]] || die "the $previous slot does not exist: nothing to roll back to"
    say "checking the $previous slot ($(target_image "$previous")) before it gets traffic"
    smoke "$(target_slot_url "$previous")" || die "the $previous slot is not healthy: traffic stays on $live"
    target_switch "$previous"
    smoke "$(target_public_url)" || die "the public address failed its smoke test after the rollback"
    say "live: $previous; $live stays ready (deploy/deploy.sh rollback again to undo)"
}

cmd_status() {
    local live slot
    live=$(target_live)
    echo "target: $DEPLOY_TARGET, public: $(target_public_url)"
    for slot in blue green; do
        printf '%-6s %-5s %s\n' "$slot" "$([[ $slot == "$live" ]] && echo live || echo idle)" \
            "$(target_image "$slot" || true)"
    done
}

case ${1:-} in
    deploy) cmd_deploy "${2:-}" ;;
    rollback) cmd_rollback ;;
    status) cmd_status ;;
    teardown) target_teardown ;;
    *) die "usage: deploy/deploy.sh deploy IMAGE | rollback | status | teardown" ;;
esac
