#!/usr/bin/env bash
# `make ci-pipeline BASELINE=<git ref>`: the pipeline half of CI, the same on
# a laptop, in `.ci/run` and in the workflows (docs/ci.md).
#
#   BASELINE=origin/main scripts/ci-pipeline.sh
#
# Runs `dvc repro`, the load test and the reproduction check (the committed
# dvc.lock and pipeline outputs must be what this run produced), recording
# each step's outcome in reports/ci-steps.tsv; then, whatever happened,
# writes the report (reports/pr.md with plot images, reports/pr-inline.md
# with inline charts) and runs the gate against BASELINE. Exit 1 when any
# step or the gate failed: a red run always comes with a report that says why.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
baseline=${BASELINE:?set BASELINE to the git revision to compare with, e.g. origin/main}
steps=reports/ci-steps.tsv
mkdir -p reports
rm -f "$steps" reports/pr.md reports/pr-inline.md
: >"$steps"

# step NAME COMMAND...: run it, keep its output in reports/ci-NAME.log, record the outcome.
step() {
    local name=$1 log="reports/ci-$1.log" status=0
    shift
    [[ -z ${GITHUB_ACTIONS:-} ]] || echo "::group::$name: $*"
    "$@" 2>&1 | tee "$log" || status=${PIPESTATUS[0]}
    [[ -z ${GITHUB_ACTIONS:-} ]] || echo "::endgroup::"
    if ((status == 0)); then
        printf '%s\tpassed\t\n' "$name" >>"$steps"
        return 0
    fi
    # The reason: the first line a command marked as an error, else the first
    # item of a verdict's list (churn check-reproduced, gate), else the last line.
    local reason
    reason=$(grep -m1 -E '^(error|ERROR)' "$log" || grep -m1 -E '^  - ' "$log" || tail -n1 "$log")
    reason=${reason#  - }
    printf '%s\tfailed\texit %d: %s\n' "$name" "$status" "${reason//$'\t'/ }" >>"$steps"
    return "$status"
}
skip() { printf '%s\tskipped\t%s\n' "$1" "$2" >>"$steps"; }

if step pipeline dvc repro; then
    step loadtest python loadtest/run.py
    step reproducible churn check-reproduced
else
    skip loadtest "the pipeline failed"
    skip reproducible "the pipeline failed"
fi

failed=0
churn report --baseline "$baseline" --steps "$steps" \
    --out reports/pr.md --inline-out reports/pr-inline.md || failed=1
churn gate --baseline "$baseline" --steps "$steps" || failed=1
exit "$failed"
