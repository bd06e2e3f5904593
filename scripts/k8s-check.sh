#!/usr/bin/env bash
# Check the Kubernetes manifests without a cluster (`make k8s-check`, part of
# `make lint`): render every deployable kustomization, validate what it
# renders against the Kubernetes OpenAPI schemas of KUBE_VERSION, and lint
# it with checkov. Any failure exits 1; a checkov exception must be written
# in place, as a checkov.io/skip annotation with its reason.
#
#   scripts/k8s-check.sh [DIR...]   (default: deploy/kubernetes/overlays/* and
#                                    deploy/kubernetes/argo-rollouts)
#
# Environment:
#   KUBE_VERSION   the Kubernetes version whose schemas apply   (1.37.0)
#   KUBECTL        kubectl with its built-in kustomize          (.venv/bin/kubectl)
#   KUBE_VALIDATE  kubernetes-validate                          (.venv/bin/kubernetes-validate)
#   CHECKOV        checkov                                      (.venv-checkov/bin/checkov)
#
# Custom resources (ServiceMonitor, Rollout, AnalysisTemplate) have no
# bundled schema: they are rendered and linted, not schema-validated, and
# the output says so.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
KUBE_VERSION=${KUBE_VERSION:-1.37.0}
KUBECTL=${KUBECTL:-$REPO_ROOT/.venv/bin/kubectl}
KUBE_VALIDATE=${KUBE_VALIDATE:-$REPO_ROOT/.venv/bin/kubernetes-validate}
CHECKOV=${CHECKOV:-$REPO_ROOT/.venv-checkov/bin/checkov}

die() { printf 'error: %s\n' "$*" >&2; exit 1; }

for tool in "$KUBECTL" "$KUBE_VALIDATE" "$CHECKOV"; do
    [[ -x $tool ]] || die "$tool is missing: run make install (and make k8s-check for checkov)"
done

if (($# == 0)); then
    set -- "$REPO_ROOT"/deploy/kubernetes/overlays/*/ "$REPO_ROOT/deploy/kubernetes/argo-rollouts"
fi

rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT

failed=0
for dir in "$@"; do
    dir=${dir%/}
    name=$(basename "$dir")
    out=$rendered/$name.yaml
    printf '==> %s\n' "${dir#"$REPO_ROOT"/}"
    if ! "$KUBECTL" kustomize "$dir" >"$out"; then
        failed=1
        continue
    fi
    # kubernetes-validate prints one WARN line per kind it has no schema for
    # (custom resources) and exits non-zero on any real failure.
    if ! (cd "$rendered" && "$KUBE_VALIDATE" --strict --quiet -k "$KUBE_VERSION" "$name.yaml") \
        >"$rendered/validate.log" 2>&1; then
        failed=1
    fi
    grep -v "find schema for kind" "$rendered/validate.log" >&2 || true
    unknown=$(sed -n 's/.*find schema for kind \([A-Za-z]*\) .*/\1/p' "$rendered/validate.log" | sort -u | paste -sd, -)
    printf '    schemas (Kubernetes %s): %s objects%s\n' "$KUBE_VERSION" \
        "$(grep -c '^kind:' "$out")" "${unknown:+; custom resources not schema-validated: $unknown}"
    if ! "$CHECKOV" --file "$out" --framework kubernetes --quiet --compact --skip-download \
        --output cli >"$rendered/checkov.log" 2>&1; then
        cat "$rendered/checkov.log" >&2
        failed=1
    else
        printf '    checkov: %s\n' "$(grep -m1 -o 'Passed checks: .*' "$rendered/checkov.log" || echo 'no findings')"
    fi
done
((failed == 0)) || die "the Kubernetes manifests did not pass (above)"
