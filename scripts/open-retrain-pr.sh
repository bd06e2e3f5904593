#!/usr/bin/env bash
# Open a pull request with what `make retrain` changed: dvc.lock, the metrics,
# the plot data and the validation report. Nothing happens when neither the
# data nor the metrics changed: the pipeline's outputs are byte-reproducible
# (the same code, data and parameters give the same dvc.lock), so an unchanged
# dvc.lock and metrics.json mean a retraining that produced nothing new.
#
#   scripts/open-retrain-pr.sh REPORT.md     # needs gh, authenticated (GH_TOKEN)
#
# BASE (default: the current branch) is the pull request's base.
set -euo pipefail
cd "$(dirname "$0")/.."
report=${1:?usage: scripts/open-retrain-pr.sh REPORT.md}
outputs=(dvc.lock metrics.json plots reports/validation.json)
base=${BASE:-$(git branch --show-current)}

# dvc.lock holds the hash of every stage's inputs and outputs (the data, the
# model), metrics.json the held-out metrics: together they say whether
# anything really changed.
if git diff --quiet -- dvc.lock metrics.json; then
    echo "retraining changed nothing (dvc.lock and metrics.json are as committed): no pull request. A retraining that is due needs new data: the pipeline's inputs are unchanged (docs/monitoring.md)"
    exit 0
fi

branch=retrain/$(date -u +%Y%m%d-%H%M%S)
title="Retrain the churn model ($(date -u +%F))"
git switch --create "$branch"
git add -- "${outputs[@]}"
git -c user.name="github-actions[bot]" \
    -c user.email="41898282+github-actions[bot]@users.noreply.github.com" \
    commit --quiet --message "$title" --message "Opened by the retrain workflow (make retrain)."
gh auth setup-git  # git push through gh's token; nothing is written into the remote URL
git push --quiet origin "$branch"
gh pr create --base "$base" --head "$branch" --title "$title" --body-file "$report"
