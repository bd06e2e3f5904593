#!/usr/bin/env bash
# `make retrain`: retrain when it is due, gate the result, write the report.
#
#   scripts/retrain.sh            # env: LOG_DIR (a prediction log: directory or s3://bucket/prefix),
#                                 #      FORCE (non-empty: retrain whatever the trigger says,
#                                 #      and re-run every stage)
#
# With LOG_DIR, `churn monitor` decides first (drift of the logged traffic,
# decay on the reported outcomes; params.yaml's drift and monitoring
# sections): exit 0 means not due, and nothing is retrained. Then `dvc repro`
# re-runs the stages whose inputs changed (new data, new parameters),
# `churn gate` checks the new model against HEAD's, and reports/retrain.md
# says what happened: the retrain workflow posts it as the pull request's body.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p reports
report=reports/retrain.md
trigger=""

if [[ -n ${LOG_DIR:-} ]]; then
    status=0
    churn monitor --log-dir "$LOG_DIR" --json reports/monitor.json >reports/monitor.txt || status=$?
    cat reports/monitor.txt
    case $status in
        0)
            if [[ -z ${FORCE:-} ]]; then
                # shellcheck disable=SC2016  # the backticks are Markdown
                printf '## Retraining not due\n\nNo drift and no decay in `%s`.\n\n```\n%s\n```\n' \
                    "$LOG_DIR" "$(cat reports/monitor.txt)" >"$report"
                echo "retraining not due (FORCE=1 retrains anyway)"
                exit 0
            fi
            ;;
        1) trigger=$(sed -n 's/^RETRAIN: yes, //p' reports/monitor.txt) ;;
        *) exit "$status" ;;
    esac
fi

dvc repro ${FORCE:+--force}
churn gate --baseline HEAD
# The pull request's body: inline charts (gh uploads no images).
churn report --baseline HEAD --out reports/retrain-images.md --inline-out "$report"
if [[ -n $trigger ]]; then
    { printf '**Retraining triggered by the prediction log:** %s\n\n' "$trigger"; cat "$report"; } >"$report.tmp"
    mv "$report.tmp" "$report"
fi
