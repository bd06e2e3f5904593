#!/usr/bin/env bash
# shellcheck disable=SC2016  # the backticks in single quotes are Markdown, not expansions
# The pull-request report when the pipeline wrote none: the `checks` job
# failed (so the pipeline never ran), or the `pipeline` job stopped before
# `make ci-pipeline` could write its report (installing the environment,
# pulling from the DVC remote, a timeout). It says which job failed and links
# the run, so that the sticky comment, which it replaces, never keeps showing
# an older, green result.
#
#   CHECKS_RESULT=failure PIPELINE_RESULT=skipped scripts/report-missing.sh
#
# env: CHECKS_RESULT, PIPELINE_RESULT   the jobs' results (needs.<job>.result:
#                                       success, failure, cancelled, skipped)
#      GITHUB_SERVER_URL, GITHUB_REPOSITORY, GITHUB_RUN_ID   the run's page (set by GitHub)
#      REPORT_DIR                       where to write (default: reports)
# Writes REPORT_DIR/pr.md (for `cml comment`) and REPORT_DIR/pr-inline.md
# (for the gh poster): the same text, it has no plots. Pure bash.
set -euo pipefail
cd "$(dirname "$0")/.."

checks=${CHECKS_RESULT:-unknown}
pipeline=${PIPELINE_RESULT:-unknown}
dir=${REPORT_DIR:-reports}

if [[ -n ${GITHUB_REPOSITORY:-} && -n ${GITHUB_RUN_ID:-} ]]; then
    run_url="${GITHUB_SERVER_URL:-https://github.com}/${GITHUB_REPOSITORY}/actions/runs/${GITHUB_RUN_ID}"
    run_link="[the workflow run](${run_url})"
else
    run_link="the workflow run"
fi

if [[ $checks != success ]]; then
    failed=checks
    what='The `checks` job did not pass (lint, the test suite or the fork suite), so the pipeline did not run: there is no model report for this commit.'
    fix='Run `make ci-checks` locally (`make lint`, `make test`, `make test-fork`) to see the same failure.'
elif [[ $pipeline != success ]]; then
    failed=pipeline
    what='The `pipeline` job stopped before it could write its report (installing the environment, pulling from the DVC remote, or a timeout).'
    fix='Its log says where; `make ci-pipeline` runs the same steps locally.'
else
    failed=artifact
    what='The `pipeline` job passed, but its report was not found in the run'"'"'s artifact.'
    fix='Re-run the workflow; if it happens again, the artifact upload step'"'"'s log says why.'
fi

mkdir -p "$dir"
{
    printf '## Model report: no report (%s)\n\n' "$failed"
    printf '**%s**\n\n' "$what"
    printf '| job | result |\n|---|---|\n| `checks` | %s |\n| `pipeline` | %s |\n\n' "$checks" "$pipeline"
    printf '%s Details: %s.\n\n' "$fix" "$run_link"
    printf '`model-gate` fails until a run passes; this comment is replaced on the next push.\n'
} >"$dir/pr.md"
cp "$dir/pr.md" "$dir/pr-inline.md"
echo "wrote $dir/pr.md and $dir/pr-inline.md: $failed failed (checks: $checks, pipeline: $pipeline)"
