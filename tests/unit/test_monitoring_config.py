"""The monitoring configuration asks only for metrics the service exports.

Prometheus and Grafana accept any metric name and show an empty panel, or
never fire an alert, when one is misspelled or renamed in the service. So the
PromQL in the alert rules (deploy/prometheus/alerts.yml) and in the dashboard
(deploy/grafana/dashboards/) is checked here against the metrics the service
actually registers (`ServiceMetrics`), with their labels. `promtool` checks the
syntax and runs the alert rules' own tests (`make compose-check`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from churn.core.contract import Contract
from churn.core.params import Params
from churn.serving import schemas
from churn.serving.middleware import ServiceMetrics
from churn.serving.routes import ops
from tests.support.paths import REPO

PROMETHEUS = REPO / "deploy" / "prometheus"
GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))

# Metrics the dashboard and the alerts may use before the service exports
# them (docs/stack.md lists them, marked planned), with their labels. Remove a
# name here once `ServiceMetrics` registers it; a test below says when.
PLANNED_METRICS: dict[str, frozenset[str]] = {}
# What the dashboard's Drift row shows: the live drift monitor's gauges.
DRIFT_METRICS = {"churn_feature_drift", "churn_drift_detected", "churn_drift_window_samples"}
# Labels Prometheus adds to every scraped series, and its per-target `up`.
TARGET_LABELS = frozenset({"job", "instance"})
PROMETHEUS_METRICS: dict[str, frozenset[str]] = {"up": frozenset()}

# Grafana's interval variables, replaced by a duration before parsing.
GRAFANA_INTERVALS = re.compile(r"\$__(rate_interval|interval|range)\b")
PROMQL_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "bool"}
    | {"and", "or", "unless", "offset", "inf", "nan"}
)
LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*\"")
STRING = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'")
DURATION_OR_NUMBER = re.compile(r"\b\d+(?:\.\d+)?(?:(?:ms|[smhdwy])\b|[eE][+-]?\d+)?")
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def exported_metrics() -> dict[str, frozenset[str]]:
    """Every series name the service exports, with its labels (from a fresh registry)."""
    metrics = ServiceMetrics()
    for value in vars(metrics).values():
        # A labelled metric exports no series until it has a child; the label
        # names have no public accessor in prometheus_client.
        if isinstance(value, MetricWrapperBase) and value._labelnames:
            value.labels(*value._labelnames)
    return {
        sample.name: frozenset(sample.labels)
        for family in metrics.registry.collect()
        for sample in family.samples
    }


EXPORTED = exported_metrics()
KNOWN = {
    name: labels | TARGET_LABELS
    for name, labels in {**EXPORTED, **PLANNED_METRICS, **PROMETHEUS_METRICS}.items()
}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not functions, labels or keywords)."""
    text = GRAFANA_INTERVALS.sub("5m", expr)
    text = STRING.sub('""', text)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = LABEL_LIST.sub(" ", text)
    text = DURATION_OR_NUMBER.sub(" ", text)
    names = set()
    for match in IDENTIFIER.finditer(text):
        is_call = text[match.end() :].lstrip().startswith("(")
        if not is_call and match.group().lower() not in PROMQL_KEYWORDS:
            names.add(match.group())
    return names


def problems(expr: str) -> list[str]:
    """Unknown metrics, and labels that the selected metrics do not have."""
    names = metric_names(expr)
    found = [f"unknown metric {name!r}" for name in sorted(names - KNOWN.keys())]
    labels = set(TARGET_LABELS).union(*(KNOWN.get(name, frozenset()) for name in names))
    text = STRING.sub(lambda m: '"' + "x" * (len(m.group()) - 2) + '"', expr)  # keep offsets
    for selector in SELECTOR.finditer(text):
        metric = selector.group(1)
        allowed = KNOWN.get(metric, frozenset()) if metric else labels
        for matcher in MATCHER.finditer(selector.group(2)):
            if metric in KNOWN and matcher.group(1) not in allowed:
                found.append(f"{metric} has no label {matcher.group(1)!r}")
    for clause in LABEL_LIST.finditer(text):
        for label in filter(None, (part.strip() for part in clause.group(2).split(","))):
            if label not in labels:
                found.append(f"{clause.group(1)} ({label}): no selected metric has that label")
    return found


def load_yaml(path: Path) -> Any:
    with path.open() as handle:
        return yaml.safe_load(handle)


def alert_rules() -> list[dict[str, Any]]:
    groups = load_yaml(PROMETHEUS / "alerts.yml")["groups"]
    return [rule for group in groups for rule in group["rules"]]


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those inside collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel query and query variable."""
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, dict) else query
            # label_values(SELECTOR, LABEL): the label must belong to the metric.
            if match := re.fullmatch(r"label_values\((.*),\s*(\w+)\)", text.strip()):
                selector, label = match.groups()
                yield f"variable {variable['name']!r}", f"sum by ({label}) ({selector})"
            else:
                yield f"variable {variable['name']!r}", text


def load_dashboard(path: Path) -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(path.read_text())
    return dashboard


# -- the checker itself ---------------------------------------------------------


def families(names: Iterable[str]) -> set[str]:
    """Metric names as documented: histograms without their series suffixes."""
    return {
        re.sub(r"_(bucket|sum|count)$", "", name)
        for name in names
        if not name.endswith("_created")  # the client's creation timestamps
    }


def test_the_docs_list_exactly_the_metrics() -> None:
    """docs/stack.md's table is what people match their queries against."""
    text = (REPO / "docs" / "stack.md").read_text()
    documented = set(re.findall(r"^\| `(churn_[a-z0-9_]+)` \|", text, re.MULTILINE))
    assert documented == families({*EXPORTED, *PLANNED_METRICS})
    assert EXPORTED["churn_http_requests_total"] == {"route", "method", "status"}


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ('sum by (route) (rate(churn_http_requests_total{status=~"5.."}[5m]))', []),
        ("histogram_quantile(0.99, sum by (le) (rate(churn_prediction_score_bucket[1m])))", []),
        ("rate(churn_http_request_total[5m])", ["unknown metric 'churn_http_request_total'"]),
        ('churn_model_info{model="x"}', ["churn_model_info has no label 'model'"]),
        (
            "sum by (feature) (churn_model_info)",
            ["by (feature): no selected metric has that label"],
        ),
        ('up{job="churn-serving"} == 0 and on (instance) churn_drift_detected offset 1h', []),
    ],
)
def test_the_checker_finds_unknown_metrics_and_labels(expr: str, expected: list[str]) -> None:
    assert problems(expr) == expected


def test_planned_metrics_are_not_exported_yet() -> None:
    """Once the service exports one, it is checked like the others: drop it from the list."""
    exported = PLANNED_METRICS.keys() & EXPORTED.keys()
    assert not exported, f"{exported} are exported now: remove them from PLANNED_METRICS"


# -- Prometheus -----------------------------------------------------------------


def test_alert_rules_use_only_exported_metrics_and_labels() -> None:
    found = {rule["alert"]: problems(rule["expr"]) for rule in alert_rules()}
    assert {alert: issues for alert, issues in found.items() if issues} == {}


def test_every_alert_has_a_severity_and_a_summary_and_is_tested_firing() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
    tests = load_yaml(PROMETHEUS / "alerts.test.yml")["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert fired == set(names)


def test_the_latency_alert_uses_the_load_test_slo(params: Params) -> None:
    slo_s = params.loadtest.max_p99_ms / 1000
    (rule,) = (rule for rule in alert_rules() if rule["alert"] == "ChurnHighLatencyP99")
    threshold = re.search(r">\s*([0-9.]+)\s*$", rule["expr"].strip())
    assert threshold is not None
    assert float(threshold.group(1)) == pytest.approx(slo_s)


def test_prometheus_scrapes_the_service_metrics_route_and_loads_the_rules(
    contract: Contract,
) -> None:
    config = load_yaml(PROMETHEUS / "prometheus.yml")
    (job,) = (job for job in config["scrape_configs"] if job["job_name"] == "churn-serving")
    router = ops.build_router(schemas.build(contract))
    routes = {getattr(route, "path", None) for route in router.routes}
    assert job.get("metrics_path", "/metrics") in routes
    for rule_file in config["rule_files"]:
        assert (PROMETHEUS / rule_file).is_file(), rule_file


# -- Grafana --------------------------------------------------------------------


def test_there_is_a_dashboard() -> None:
    assert [path.name for path in DASHBOARDS] == ["churn-service.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_queries_use_only_exported_metrics_and_labels(path: Path) -> None:
    found = {where: problems(expr) for where, expr in dashboard_exprs(load_dashboard(path))}
    assert {where: issues for where, issues in found.items() if issues} == {}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_the_dashboard_shows_every_metric(path: Path) -> None:
    """A new metric without a panel is probably forgotten."""
    used = families(
        {name for _, expr in dashboard_exprs(load_dashboard(path)) for name in metric_names(expr)}
    )
    assert families({*EXPORTED, *PLANNED_METRICS}) - used == set()


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda path: path.name)
def test_dashboard_panels_are_well_formed(path: Path) -> None:
    dashboard = load_dashboard(path)
    datasources = load_yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")
    uids = {source["uid"] for source in datasources["datasources"]}
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels(dashboard):
        assert panel.get("title"), panel["id"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[x, y]!r}"
                cells[x, y] = panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids, panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids, panel["title"]


def test_the_drift_row_shows_the_drift_metrics() -> None:
    dashboard = load_dashboard(GRAFANA / "dashboards" / "churn-service.json")
    titles = [panel["title"] for panel in dashboard["panels"]]
    start = titles.index("Drift") + 1
    end = next(
        (i for i in range(start, len(titles)) if dashboard["panels"][i]["type"] == "row"),
        len(titles),
    )
    used = {
        name
        for panel in dashboard["panels"][start:end]
        for target in panel["targets"]
        for name in metric_names(target["expr"])
    }
    assert used == DRIFT_METRICS
    assert EXPORTED.keys() >= DRIFT_METRICS


def test_the_dashboard_provider_serves_the_folder_compose_mounts() -> None:
    provider = load_yaml(GRAFANA / "provisioning" / "dashboards" / "churn.yml")
    (entry,) = provider["providers"]
    compose = load_yaml(REPO / "compose.yaml")
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == entry["options"]["path"]
