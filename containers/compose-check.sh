#!/usr/bin/env bash
# Static checks of the local stack's files, with no container engine and no
# network beyond Debian's packages (docs/stack.md):
#
#   yamllint          compose.yaml and deploy/{prometheus,grafana} (style, duplicate keys)
#   docker-compose    compose.yaml against the compose schema, resolved with
#                     .env.example and with no .env at all
#   hadolint          containers/mlflow.Dockerfile
#   promtool          prometheus.yml and the alert rules; the rules' unit tests
#                     (alerts.test.yml); the dashboards' PromQL
#
#   containers/compose-check.sh     # environment: PROMTOOL (a promtool to use)
#
# Missing tools come from Debian's packages (docker-compose, yamllint), and
# promtool from the `prometheus` package, unpacked into a cache (installing
# the package would also start a Prometheus server). The names and labels in
# the PromQL are checked against the service by tests/unit/test_monitoring_config.py.
set -euo pipefail
# shellcheck source=containers/common.sh source-path=SCRIPTDIR/..
source "$(dirname "$0")/common.sh"
cd "$REPO_ROOT"

# The project's tools (hadolint, pytest) come from .venv.
python=$REPO_ROOT/.venv/bin/python
[[ -x $python ]] || die "$python not found: run make install"
PATH=$REPO_ROOT/.venv/bin:$PATH
work=$(mktemp -d "${TMPDIR:-/tmp}/compose-check.XXXXXX")
trap 'rm -rf "$work"' EXIT

# promtool_path: print a promtool, unpacking Debian's the first time.
promtool_path() {
    if [[ -n ${PROMTOOL:-} ]]; then
        echo "$PROMTOOL"
        return
    elif type -P promtool >/dev/null; then
        type -P promtool
        return
    fi
    local cache=${XDG_CACHE_HOME:-$HOME/.cache}/churn-tools
    local cached
    cached=$(find "$cache" -maxdepth 1 -name 'promtool-*' -type f -executable 2>/dev/null | sort | tail -n1)
    if [[ -n $cached ]]; then
        echo "$cached"
        return
    fi
    command -v apt-get >/dev/null || die "promtool not found: install Prometheus' tools, or set PROMTOOL"
    say "unpacking promtool from Debian's prometheus package (once)" >&2
    (cd "$work" && { apt-get download prometheus >/dev/null 2>&1 ||
        { as_root apt-get update -qq && apt-get download prometheus >/dev/null; }; })
    local deb version
    deb=$(echo "$work"/prometheus_*.deb)
    version=$(dpkg-deb --field "$deb" Version)
    mkdir -p "$cache"
    dpkg-deb --fsys-tarfile "$deb" | tar -x -O ./usr/bin/promtool >"$cache/promtool-${version%%+*}"
    chmod +x "$cache/promtool-${version%%+*}"
    rm -f "$deb"
    echo "$cache/promtool-${version%%+*}"
}

ensure_tools docker-compose yamllint
promtool=$(promtool_path)

say "yamllint"
yamllint --strict --config-data \
    '{extends: default, rules: {line-length: {max: 100}, document-start: disable}}' \
    compose.yaml deploy/prometheus deploy/grafana

say "docker-compose config ($(docker-compose version --short))"
docker-compose --file compose.yaml --env-file .env.example config --quiet
touch "$work/empty.env"
docker-compose --file compose.yaml --env-file "$work/empty.env" config --quiet

say "hadolint containers/mlflow.Dockerfile"
hadolint containers/mlflow.Dockerfile

say "promtool ($("$promtool" --version 2>&1 | head -n1))"
"$promtool" check config deploy/prometheus/prometheus.yml
"$promtool" test rules deploy/prometheus/alerts.test.yml

# Each dashboard query becomes a recording rule, so promtool parses it;
# Grafana's variables are replaced by values of the same kind first.
"$python" - deploy/grafana/dashboards/*.json >"$work/dashboard-queries.yml" <<'PY'
import json
import re
import sys

VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
rules = []
for path in sys.argv[1:]:
    dashboard = json.load(open(path))
    for panel in dashboard["panels"] + [p for row in dashboard["panels"] for p in row.get("panels", [])]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in VARIABLES.items():
                expr = expr.replace(name, value)
            expr = re.sub(r"\$\{?(\w+)\}?", r"\1", expr)  # $instance inside a matcher's string
            record = f"dashboard:panel_{panel['id']}_{target['refId']}"
            rules.append({"record": record, "expr": expr})
print(json.dumps({"groups": [{"name": "dashboard-queries", "rules": rules}]}, indent=1))
PY
# A failure names the panel by id: dashboard:panel_<id>_<refId>.
"$promtool" check rules "$work/dashboard-queries.yml" 2>&1 | sed "s|$work/||"

say "compose.yaml and the monitoring configuration agree with the code"
"$python" -m pytest --quiet --no-header -p no:cacheprovider \
    tests/unit/test_compose.py tests/unit/test_monitoring_config.py

say "compose.yaml, Prometheus and Grafana configuration: all checks passed"
