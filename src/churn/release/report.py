"""The pull-request report: metrics and parameters against the baseline, as Markdown.

`render` is a pure function of already-read inputs (the gate's verdict, the
metrics of both revisions, the `dvc params diff` JSON, the validation and
load-test summaries, the CI steps, the model card, the plots already
rendered as Markdown), so the same Markdown is produced in CI, posted as a
comment, and on a laptop by `make ci`. It is written for every outcome: when
validation, the pipeline, the load test or the reproduction check failed,
the report says so first, and shows what there is. It is rendered here
rather than with ``dvc metrics diff --md``, which has printed wrong values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from churn.release.steps import pipeline_failed

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from churn.core.artifacts import ModelCard, RunRecord
    from churn.release.gate import GateResult
    from churn.release.steps import Step

MISSING = "—"


@dataclass(frozen=True)
class ReportInputs:
    gate: GateResult
    metrics: Mapping[str, Mapping[str, Any]]
    """metric → {"old": baseline value or None, "new": this revision's value or None}."""
    params: Mapping[str, Mapping[str, Any]]
    """Changed parameters only: name → {"old", "new"}."""
    validation: Mapping[str, Any] | None
    card: ModelCard | None
    """None when the pipeline produced no model."""
    run: RunRecord | None
    onnx_bytes: int | None
    loadtest: Mapping[str, Any] | None
    plots: Sequence[str] = ()
    """The plots section's Markdown lines (`churn.release.plots`)."""
    steps: Sequence[Step] = ()
    title: str = "Model"
    """What the model predicts (the contract's title): the report's heading."""


def _number(value: Any) -> str:
    return MISSING if value is None else f"{float(value):.4f}"


def _change(old: Any, new: Any) -> str:
    if old is None and new is None:
        return MISSING
    if old is None:
        return "added"
    if new is None:
        return "removed"
    return f"{float(new) - float(old):+.4f}"


def _metrics_table(inputs: ReportInputs) -> list[str]:
    baseline = inputs.gate.baseline or "baseline"
    checks = {check.metric: check for check in inputs.gate.checks}
    lines = [f"| metric | {baseline} | this change | change | gate |", "|---|--:|--:|--:|---|"]
    for metric in sorted(set(inputs.metrics) | set(checks)):
        values = inputs.metrics.get(metric, {})
        old, new = values.get("old"), values.get("new")
        gate = ""
        if (check := checks.get(metric)) is not None:
            rule = check.gate
            sign = "≥" if rule.higher_is_better else "≤"
            verdict = "✅" if check.passed else "❌"
            gate = f"{verdict} {sign} {rule.limit:g}, worsening ≤ {rule.max_regression:g}"
        lines.append(
            f"| {metric} | {_number(old)} | {_number(new)} | {_change(old, new)} | {gate} |"
        )
    return lines


def _params_section(params: Mapping[str, Mapping[str, Any]]) -> list[str]:
    if not params:
        return ["No parameter changes."]
    lines = ["| parameter | baseline | this change |", "|---|---|---|"]
    for name in sorted(params):
        old, new = params[name].get("old"), params[name].get("new")
        lines.append(
            f"| `{name}` | {MISSING if old is None else old} | {MISSING if new is None else new} |"
        )
    return lines


def _validation_section(validation: Mapping[str, Any] | None) -> list[str]:
    if validation is None:
        return ["Not run."]
    stats = validation["statistics"]
    rows = f"{validation['rows']:,} rows"
    if validation["success"]:
        return [f"✅ {stats['successful']} of {stats['evaluated']} checks passed on {rows}."]
    lines = [f"❌ {stats['failed']} of {stats['evaluated']} checks failed on {rows}:"]
    for failure in validation["failures"]:
        examples = ", ".join(repr(v) for v in failure.get("examples", []))
        lines.append(
            f"- `{failure['column']}`: {failure['rule']}"
            + (f" (e.g. {examples})" if examples else "")
        )
    return lines


def _model_section(inputs: ReportInputs) -> list[str]:
    card = inputs.card
    if card is None:
        return ["No model: the pipeline did not produce one."]
    lines = ["| | |", "|---|---|", f"| estimator | {card.estimator} |"]
    size = MISSING if inputs.onnx_bytes is None else f"{inputs.onnx_bytes / 1024:.1f} KiB"
    lines.append(f"| ONNX model | {size}, sha256 `{card.onnx_sha256[:16]}…` |")
    lines.append(f"| pipeline | sha256 `{card.sha256[:16]}…` |")
    lines.append(f"| decision threshold | {card.threshold:g} |")
    if "cv_roc_auc" in card.metrics:
        cv = f"{card.metrics['cv_roc_auc']:.4f} ± {card.metrics.get('cv_roc_auc_std', 0):.4f}"
        lines.append(f"| CV ROC AUC (train split) | {cv} |")
    if (run := inputs.run) is not None:
        lines.append(f"| MLflow | {run.registered_model} v{run.version}, run `{run.run_id}` |")
    return lines


def _loadtest_section(loadtest: Mapping[str, Any] | None) -> list[str]:
    if loadtest is None:
        return ["Not run."]
    overall = next(row for row in loadtest["rows"] if row["name"] == "all")
    slo = loadtest["params"]
    verdict = "✅ SLO met" if loadtest["slo_met"] else "❌ SLO broken"
    return [
        "| requests/s | p50 ms | p99 ms | error rate | SLO |",
        "|--:|--:|--:|--:|---|",
        f"| {overall['requests_per_s']:,.0f} | {overall['p50_ms']:g} | {overall['p99_ms']:g} "
        f"| {overall['error_rate']:.2%} | {verdict} (p99 ≤ {slo['max_p99_ms']:g} ms, "
        f"errors ≤ {slo['max_error_rate']:.2%}) |",
    ]


def _steps_section(steps: Sequence[Step]) -> list[str]:
    return [f"- {step.render()}" for step in steps]


def render(inputs: ReportInputs) -> str:
    gate = inputs.gate
    against = f"against `{gate.baseline}`" if gate.baseline else "no baseline yet (first run)"
    heading = "✅ passed" if gate.passed else "❌ failed"
    lines = [f"## {inputs.title}: model report", "", f"**Gate: {heading}** ({against})"]
    if problems := gate.problems():
        lines += ["", *(f"- {problem}" for problem in problems)]
    if gate.notes:
        lines += ["", *(f"> **Note:** {note}" for note in gate.notes)]
    produced = not pipeline_failed(list(inputs.steps))
    validation = _validation_section(inputs.validation)
    if not produced and inputs.validation is not None and inputs.validation["success"]:
        validation = [
            "From `reports/validation.json` as it is now: the pipeline failed, so this "
            "may be the committed report, not this run's.",
            "",
            *validation,
        ]
    sections: list[tuple[str, list[str]]] = []
    if inputs.steps:
        sections.append(("CI steps", _steps_section(inputs.steps)))
    sections += [
        (
            "Metrics (held-out split)",
            _metrics_table(inputs) if produced else ["Not produced: the pipeline failed."],
        ),
        ("Parameters", _params_section(inputs.params)),
        ("Data validation", validation),
        ("Model", _model_section(inputs) if produced else ["Not produced: the pipeline failed."]),
        ("Load test", _loadtest_section(inputs.loadtest)),
    ]
    if inputs.plots and produced:
        sections.append(("Plots", list(inputs.plots)))
    for title, body in sections:
        lines += ["", f"### {title}", "", *body]
    return "\n".join(lines) + "\n"
