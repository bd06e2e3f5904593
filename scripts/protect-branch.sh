#!/usr/bin/env bash
# `make protect-branch`: protect the main branch on GitHub, through `gh api`.
#
#   scripts/protect-branch.sh     # needs gh, authenticated as a repository admin
#
# Sets, replacing whatever rule the branch had (running it again changes
# nothing: the same PUT with the same payload):
#   - the required status checks `checks` and `model-gate` (docs/ci.md),
#     strict: the branch must be up to date with main before merging;
#   - a pull request with an approving review from a code owner
#     (.github/CODEOWNERS: the gate's rules, the workflows, the gate code);
#     a new push dismisses earlier approvals;
#   - no force pushes, no deletion.
# Open one pull request first: GitHub only requires checks it has seen.
#
# env: REPO            owner/name (default: GITHUB_REPOSITORY, else `gh repo view`)
#      BRANCH          default main
#      ENFORCE_ADMINS  true: the rule binds admins too (default false: an admin
#                      can still merge, e.g. the only maintainer of a fork, who
#                      cannot approve their own pull request)
# Exit: 0 done, 1 GitHub refused, 2 gh missing or not logged in, or bad settings.
set -euo pipefail

die() {
    echo "error: $1" >&2
    exit "${2:-2}"
}

command -v gh >/dev/null 2>&1 ||
    die "gh (the GitHub CLI) is not installed: install it (https://cli.github.com), run gh auth login, then make protect-branch"
gh auth status >/dev/null 2>&1 ||
    die "gh is not logged in: run gh auth login (or set GH_TOKEN to a token with the repository's Administration permission)"

branch=${BRANCH:-main}
enforce_admins=${ENFORCE_ADMINS:-false}
[[ $enforce_admins == true || $enforce_admins == false ]] ||
    die "ENFORCE_ADMINS must be true or false, not '$enforce_admins'"

repo=${REPO:-${GITHUB_REPOSITORY:-}}
if [[ -z $repo ]]; then
    repo=$(gh repo view --json nameWithOwner --jq .nameWithOwner) ||
        die "no repository: run this in a clone of it, or set REPO=owner/name"
fi
[[ $repo =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$ ]] || die "not a repository name (owner/name): '$repo'"

# The REST API's "Update branch protection": every top-level field is required.
payload='{
  "required_status_checks": {
    "strict": true,
    "checks": [{"context": "checks"}, {"context": "model-gate"}]
  },
  "enforce_admins": '"$enforce_admins"',
  "required_pull_request_reviews": {
    "dismiss_stale_reviews": true,
    "require_code_owner_reviews": true,
    "required_approving_review_count": 1
  },
  "restrictions": null,
  "allow_force_pushes": false,
  "allow_deletions": false
}'

gh api --method PUT \
    -H "Accept: application/vnd.github+json" \
    "repos/${repo}/branches/${branch}/protection" \
    --input - <<<"$payload" >/dev/null ||
    die "GitHub refused to protect ${repo}@${branch} (needs admin rights on the repository; a private repository needs GitHub Pro, Team or Enterprise)" 1

echo "protected ${repo}@${branch}: required checks 'checks' and 'model-gate' (branch up to date first), a code owner's approval (stale approvals dismissed), no force pushes, no deletion"
