"""The merge gate and the pull-request report on made-up metrics (no git, no DVC).

The gate is params.yaml's: every value is placed against its limits and
allowed regressions, so the tests hold for any gate a fork writes.
"""

from dataclasses import replace

import pytest

from churn.core.artifacts import RunRecord
from churn.core.contract import Contract
from churn.core.params import MetricGate
from churn.release.gate import GateResult, check_gate
from churn.release.report import ReportInputs, render
from churn.release.steps import PIPELINE, Step
from tests.support.cards import stand_in_card
from tests.support.params import (
    HEADROOM,
    at_limit,
    comfortable,
    limit_problem,
    nudged,
    regression_problem,
)

Gates = dict[str, MetricGate]
BASELINE = "main"


def _gate(
    gates: Gates,
    current: dict[str, float],
    baseline: dict[str, float] | None,
    validation_passed: bool | None = None,
    loadtest_passed: bool | None = None,
) -> GateResult:
    return check_gate(
        current,
        baseline,
        gates,
        baseline_name=BASELINE,
        validation_passed=validation_passed,
        loadtest_passed=loadtest_passed,
    )


def _worse(gates: Gates, values: dict[str, float], metric: str, by: float) -> dict[str, float]:
    """``values`` with ``metric`` moved ``by`` in its bad direction."""
    return values | {metric: nudged(gates[metric], values[metric], -by)}


def test_pass_against_the_baseline(gates: Gates) -> None:
    main = comfortable(gates)
    better = {m: nudged(g, main[m], HEADROOM) for m, g in gates.items()}
    result = _gate(gates, better, main)
    assert result.passed, result.render()
    assert result.render() == f"GATE PASSED ({len(gates)} metrics, against {BASELINE})"


def test_fail_on_every_limit_floor_or_ceiling(gates: Gates) -> None:
    current = at_limit(gates, -HEADROOM)
    result = _gate(gates, current, None)
    assert not result.passed
    assert result.problems() == [limit_problem(m, g, current[m]) for m, g in gates.items()]
    assert result.render().splitlines()[0] == "GATE FAILED (no baseline yet)"


def test_a_value_exactly_at_its_limit_passes(gates: Gates) -> None:
    assert _gate(gates, at_limit(gates, 0), None).passed


@pytest.mark.parametrize("side", ["just within", "just beyond"])
def test_each_metric_regresses_in_its_own_bad_direction(gates: Gates, side: str) -> None:
    """A lower-is-better metric regresses upwards, a higher-is-better one downwards."""
    main = comfortable(gates)
    for metric, gate in gates.items():
        by = gate.max_regression + (-HEADROOM / 2 if side == "just within" else HEADROOM / 2)
        current = _worse(gates, main, metric, max(by, 0))
        result = _gate(gates, current, main)
        failed = [c.metric for c in result.checks if not c.passed]
        if side == "just within":
            assert failed == [], result.render()
        else:
            assert failed == [metric]
            assert result.problems() == [
                regression_problem(metric, gate, current[metric], main[metric])
            ]


def test_no_baseline_yet_checks_limits_only(gates: Gates) -> None:
    result = _gate(gates, at_limit(gates, HEADROOM / 10), None)
    assert result.passed
    assert result.baseline is None
    assert "no baseline yet" in result.render()


def test_a_metric_added_since_the_baseline_is_held_to_its_limit_only(gates: Gates) -> None:
    main = comfortable(gates)
    added = list(gates)[-1]
    result = _gate(
        gates, main | {added: gates[added].limit}, {m: main[m] for m in gates if m != added}
    )
    assert result.passed, result.render()
    check = next(c for c in result.checks if c.metric == added)
    assert check.baseline is None


def test_a_gated_metric_removed_fails(gates: Gates) -> None:
    main = comfortable(gates)
    removed = next(iter(gates))
    result = _gate(gates, {m: v for m, v in main.items() if m != removed}, main)
    assert result.problems() == [f"{removed}: gated but missing from metrics.json"]


@pytest.mark.parametrize(
    ("validation", "loadtest", "problem"),
    [
        (False, None, "data validation failed"),
        (None, False, "the load test broke its SLO"),
    ],
)
def test_failed_validation_or_load_test_fails_the_gate(
    gates: Gates, validation: bool | None, loadtest: bool | None, problem: str
) -> None:
    main = comfortable(gates)
    result = _gate(gates, main, main, validation_passed=validation, loadtest_passed=loadtest)
    assert not result.passed
    assert any(problem in p for p in result.problems())


def test_a_failed_step_fails_the_gate_with_its_reason(gates: Gates) -> None:
    main = comfortable(gates)
    steps = [Step(PIPELINE, "passed"), Step("loadtest", "failed", "locust exited 2")]
    result = check_gate(main, main, gates, baseline_name=BASELINE, steps=steps)
    assert not result.passed
    assert result.problems() == ["loadtest failed: locust exited 2"]
    assert len(result.checks) == len(gates)  # the metrics were still checked


def test_a_failed_pipeline_has_no_metrics_to_check(gates: Gates) -> None:
    main = comfortable(gates)
    steps = [Step(PIPELINE, "failed", "error: stage train failed")]
    result = check_gate(main, main, gates, baseline_name=BASELINE, steps=steps)
    assert not result.passed
    assert result.checks == []
    assert result.problems() == ["pipeline failed: error: stage train failed"]


def test_notes_are_shown_and_do_not_fail_the_gate(gates: Gates) -> None:
    main = comfortable(gates)
    result = replace(_gate(gates, main, main), notes=["the gate was edited"])
    assert result.passed
    assert result.render().splitlines()[-1] == "  note: the gate was edited"


CARD = stand_in_card(metrics={"cv_roc_auc": 0.75, "cv_roc_auc_std": 0.0125})
RUN = RunRecord(
    "sqlite:///mlflow.db", "experiment", "r1", "models:/m-1", "classifier", "7", CARD.sha256
)
ROWS = 12345  # a made-up count: the report prints it with a thousands separator


def _report(gate: GateResult, metrics: dict[str, dict[str, float | None]], title: str) -> str:
    return render(
        ReportInputs(
            gate=gate,
            metrics=metrics,
            params={"prepare.seed": {"old": 1, "new": 2}},
            validation={
                "success": True,
                "rows": ROWS,
                "statistics": {"evaluated": 64, "successful": 64, "failed": 0},
                "failures": [],
            },
            card=CARD,
            run=RUN,
            onnx_bytes=4200,
            loadtest=None,
            plots=["![ROC](plots/roc.png)"],
            title=title,
        )
    )


def _rule(gate: MetricGate, passed: bool) -> str:
    sign = "≥" if gate.higher_is_better else "≤"
    verdict = "✅" if passed else "❌"
    return f"{verdict} {sign} {gate.limit:g}, worsening ≤ {gate.max_regression:g}"


def test_report_shows_the_diff_the_gate_and_added_or_removed_metrics(
    gates: Gates, contract: Contract
) -> None:
    main = comfortable(gates)
    failing = next(iter(gates))
    current = main | {failing: nudged(gates[failing], gates[failing].limit, -HEADROOM)}
    diff: dict[str, dict[str, float | None]] = {
        m: {"old": main[m], "new": current[m]} for m in gates
    }
    diff |= {"new_metric": {"old": None, "new": 0.5}, "old_metric": {"old": 0.6, "new": None}}
    text = _report(_gate(gates, current, main), diff, contract.title)
    old, new = main[failing], current[failing]
    assert text.startswith(f"## {contract.title}: model report\n")
    assert f"**Gate: ❌ failed** (against `{BASELINE}`)" in text
    assert f"- {limit_problem(failing, gates[failing], new)}" in text
    row = (
        f"| {failing} | {old:.4f} | {new:.4f} | {new - old:+.4f} | {_rule(gates[failing], False)} |"
    )
    assert row in text
    for metric in gates:
        if metric != failing:
            assert f"| {metric} | {main[metric]:.4f} | {main[metric]:.4f} | +0.0000 | " in text
    assert "| new_metric | — | 0.5000 | added |  |" in text
    assert "| old_metric | 0.6000 | — | removed |  |" in text
    assert "| `prepare.seed` | 1 | 2 |" in text
    assert f"✅ 64 of 64 checks passed on {ROWS:,} rows." in text
    assert "| CV ROC AUC (train split) | 0.7500 ± 0.0125 |" in text
    assert "| MLflow | classifier v7, run `r1` |" in text
    assert "### Plots\n\n![ROC](plots/roc.png)" in text
    assert "### Load test\n\nNot run." in text


def test_report_without_a_baseline(gates: Gates, contract: Contract) -> None:
    current = comfortable(gates)
    metric = next(iter(gates))
    text = _report(
        _gate(gates, current, None), {metric: {"old": None, "new": current[metric]}}, contract.title
    )
    assert "**Gate: ✅ passed** (no baseline yet (first run))" in text
    assert (
        f"| {metric} | — | {current[metric]:.4f} | added | {_rule(gates[metric], True)} |" in text
    )


def test_a_failed_pipeline_still_gets_a_report_that_says_so(
    gates: Gates, contract: Contract
) -> None:
    main = comfortable(gates)
    steps = [
        Step(PIPELINE, "failed", "error: 2 of 40 checks failed"),
        Step("loadtest", "skipped", "the pipeline failed"),
    ]
    gate = replace(
        check_gate(main, main, gates, baseline_name=BASELINE, steps=steps),
        notes=["this change edits `gate:`"],
    )
    text = render(
        ReportInputs(
            gate=gate,
            metrics={},
            params={},
            validation=None,
            card=None,
            run=None,
            onnx_bytes=None,
            loadtest=None,
            plots=["![ROC](plots/roc.png)"],
            steps=steps,
            title=contract.title,
        )
    )
    assert (
        f"**Gate: ❌ failed** (against `{BASELINE}`)\n\n- pipeline failed: error: 2 of 40" in text
    )
    assert "> **Note:** this change edits `gate:`" in text
    assert "- ❌ pipeline: failed (error: 2 of 40 checks failed)" in text
    assert "- ⏭️ loadtest: skipped (the pipeline failed)" in text
    assert "### Metrics (held-out split)\n\nNot produced: the pipeline failed." in text
    assert "### Model\n\nNot produced: the pipeline failed." in text
    assert "### Plots" not in text  # the plot data on disk is not this change's
