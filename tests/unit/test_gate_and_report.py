"""The merge gate and the pull-request report, on fixture metrics (no git, no DVC)."""

import pytest

from churn.artifacts import ModelCard, RunRecord
from churn.gate import GateResult, baseline_values, check_gate
from churn.params import MetricGate
from churn.report import ReportInputs, render

GATES = {
    "roc_auc": MetricGate(limit=0.84, max_regression=0.01),
    "brier": MetricGate(limit=0.16, max_regression=0.01, higher_is_better=False),
}
MAIN = {"roc_auc": 0.845, "brier": 0.140, "f1": 0.60}


def _gate(
    current: dict[str, float],
    baseline: dict[str, float] | None,
    validation_passed: bool | None = None,
    loadtest_passed: bool | None = None,
) -> GateResult:
    return check_gate(
        current,
        baseline,
        GATES,
        baseline_name="main",
        validation_passed=validation_passed,
        loadtest_passed=loadtest_passed,
    )


def test_pass_against_the_baseline() -> None:
    result = _gate({"roc_auc": 0.846, "brier": 0.139, "f1": 0.61}, MAIN)
    assert result.passed
    assert result.render() == "GATE PASSED (2 metrics, against main)"


def test_fail_on_an_absolute_floor_and_ceiling() -> None:
    result = _gate({"roc_auc": 0.83, "brier": 0.17}, None)
    assert not result.passed
    assert result.problems() == [
        "roc_auc: 0.8300 is below the floor of 0.84",
        "brier: 0.1700 is above the ceiling of 0.16",
    ]


def test_fail_on_a_regression_within_the_limit() -> None:
    result = _gate({"roc_auc": 0.8410, "brier": 0.1400}, {"roc_auc": 0.8600, "brier": 0.14})
    assert not result.passed
    assert result.problems() == [
        "roc_auc: 0.8410 is 0.0190 worse than the baseline's 0.8600 (allowed: 0.01)"
    ]


def test_a_lower_is_better_metric_regresses_upwards() -> None:
    result = _gate({"roc_auc": 0.85, "brier": 0.155}, {"roc_auc": 0.85, "brier": 0.14})
    assert [c.metric for c in result.checks if not c.passed] == ["brier"]


def test_no_baseline_yet_checks_limits_only() -> None:
    result = _gate({"roc_auc": 0.841, "brier": 0.159}, None)
    assert result.passed
    assert result.baseline is None
    assert "no baseline yet" in result.render()


def test_a_metric_added_since_the_baseline_is_held_to_its_limit_only() -> None:
    result = _gate({"roc_auc": 0.85, "brier": 0.15}, {"roc_auc": 0.85})
    assert result.passed
    brier = next(c for c in result.checks if c.metric == "brier")
    assert brier.baseline is None


def test_a_gated_metric_removed_fails() -> None:
    result = _gate({"roc_auc": 0.85}, MAIN)
    assert result.problems() == ["brier: gated but missing from metrics.json"]


@pytest.mark.parametrize(
    ("validation", "loadtest", "problem"),
    [
        (False, None, "data validation failed"),
        (None, False, "the load test broke its SLO"),
    ],
)
def test_failed_validation_or_load_test_fails_the_gate(
    validation: bool | None, loadtest: bool | None, problem: str
) -> None:
    result = _gate(
        {"roc_auc": 0.85, "brier": 0.14},
        MAIN,
        validation_passed=validation,
        loadtest_passed=loadtest,
    )
    assert not result.passed
    assert any(problem in p for p in result.problems())


def test_baseline_values_from_a_dvc_metrics_diff() -> None:
    diff: dict[str, dict[str, float | None]] = {
        "roc_auc": {"old": 0.84, "new": 0.85},
        "new_metric": {"old": None, "new": 1.0},
    }
    assert baseline_values(diff) == {"roc_auc": 0.84}
    assert baseline_values({"roc_auc": {"old": None, "new": 0.85}}) is None


CARD = ModelCard(
    sha256="a" * 64,
    onnx_sha256="b" * 64,
    onnx_max_abs_diff=1e-7,
    estimator="logistic_regression",
    threshold=0.5,
    params={},
    features=[],
    data={},
    metrics={"cv_roc_auc": 0.846, "cv_roc_auc_std": 0.0126},
    reference={},
)


def _report(gate: GateResult, metrics: dict[str, dict[str, float | None]]) -> str:
    return render(
        ReportInputs(
            gate=gate,
            metrics=metrics,
            params={"train.logistic_regression.C": {"old": 1.0, "new": 0.3}},
            validation={
                "success": True,
                "rows": 7043,
                "statistics": {"evaluated": 64, "successful": 64, "failed": 0},
                "failures": [],
            },
            card=CARD,
            run=RunRecord("sqlite:///mlflow.db", "churn", "r1", "models:/m-1", "churn", "7"),
            onnx_bytes=4200,
            loadtest=None,
            images={"roc": "plots/roc.png"},
        )
    )


def test_report_shows_the_diff_the_gate_and_added_or_removed_metrics() -> None:
    gate = _gate({"roc_auc": 0.83, "brier": 0.14}, MAIN)
    text = _report(
        gate,
        {
            "roc_auc": {"old": 0.845, "new": 0.83},
            "brier": {"old": 0.14, "new": 0.14},
            "new_metric": {"old": None, "new": 0.5},
            "f1": {"old": 0.60, "new": None},
        },
    )
    assert "**Gate: ❌ failed** (against `main`)" in text
    assert "- roc_auc: 0.8300 is below the floor of 0.84" in text
    assert "| roc_auc | 0.8450 | 0.8300 | -0.0150 | ❌ ≥ 0.84, worsening ≤ 0.01 |" in text
    assert "| new_metric | — | 0.5000 | added |  |" in text
    assert "| f1 | 0.6000 | — | removed |  |" in text
    assert "| `train.logistic_regression.C` | 1.0 | 0.3 |" in text
    assert "✅ 64 of 64 checks passed on 7,043 rows." in text
    assert "| MLflow | churn v7, run `r1` |" in text
    assert "![roc](plots/roc.png)" in text
    assert "### Load test\n\nNot run." in text


def test_report_without_a_baseline() -> None:
    gate = _gate({"roc_auc": 0.85, "brier": 0.14}, None)
    text = _report(gate, {"roc_auc": {"old": None, "new": 0.85}})
    assert "**Gate: ✅ passed** (no baseline yet (first run))" in text
    assert "| roc_auc | — | 0.8500 | added | ✅ ≥ 0.84, worsening ≤ 0.01 |" in text
