"""The merge gate: does this model pass its limits and hold its ground against the baseline?

The rules are data (`params.yaml`'s ``gate``: one `MetricGate` per metric),
read from the *baseline's* commit so that a change cannot loosen the gate
that judges it. `check_gate` is a pure function of the current metrics, the
baseline's (or none, for a first pipeline run), the outcomes of validation,
the load test and the CI steps, so it is tested on fixtures and runs the
same in CI and on a laptop; `judge` gathers those inputs from Git and disk.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from churn.core.jsonio import read_json_object
from churn.core.params import load_params, parse_gate
from churn.release import revision
from churn.release.steps import Step, failed, pipeline_failed, read_steps

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from churn.core.params import MetricGate

METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class GateCheck:
    """One gated metric: its value, the baseline's, and what (if anything) is wrong."""

    metric: str
    value: float | None
    baseline: float | None
    gate: MetricGate
    problems: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class GateResult:
    checks: list[GateCheck]
    baseline: str | None
    other_problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the reader should know that does not fail the gate (e.g. an edited gate)."""

    @property
    def passed(self) -> bool:
        return not self.other_problems and all(check.passed for check in self.checks)

    def problems(self) -> list[str]:
        return [p for check in self.checks for p in check.problems] + self.other_problems

    def render(self) -> str:
        against = f"against {self.baseline}" if self.baseline else "no baseline yet"
        if self.passed:
            lines = [f"GATE PASSED ({len(self.checks)} metrics, {against})"]
        else:
            lines = [f"GATE FAILED ({against})"]
            lines += [f"  - {problem}" for problem in self.problems()]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def check_metric(
    metric: str, value: float | None, baseline: float | None, gate: MetricGate
) -> GateCheck:
    problems: list[str] = []
    if value is None:
        problems.append(f"{metric}: gated but missing from {METRICS_FILE}")
        return GateCheck(metric, value, baseline, gate, tuple(problems))
    if not gate.within_limit(value):
        side = "below the floor" if gate.higher_is_better else "above the ceiling"
        problems.append(f"{metric}: {value:.4f} is {side} of {gate.limit:g}")
    if baseline is not None and gate.worsening(value, baseline) > gate.max_regression:
        problems.append(
            f"{metric}: {value:.4f} is {gate.worsening(value, baseline):.4f} worse than the "
            f"baseline's {baseline:.4f} (allowed: {gate.max_regression:g})"
        )
    return GateCheck(metric, value, baseline, gate, tuple(problems))


def check_gate(
    current: Mapping[str, float],
    baseline: Mapping[str, float] | None,
    gates: Mapping[str, MetricGate],
    *,
    baseline_name: str | None = None,
    validation_passed: bool | None = None,
    loadtest_passed: bool | None = None,
    steps: Sequence[Step] = (),
) -> GateResult:
    """Check every gated metric; ``None`` for a check that did not run means no verdict.

    A metric the baseline lacks (newly added) is held to its limit only. A
    failed step (``steps``) fails the gate; when the pipeline itself failed
    there are no metrics of this change to check.
    """
    other = [
        f"{step.name} failed" + (f": {step.detail}" if step.detail else "")
        for step in failed(list(steps))
    ]
    if pipeline_failed(list(steps)):
        checks = []
    else:
        checks = [
            check_metric(
                metric, current.get(metric), baseline.get(metric) if baseline else None, gate
            )
            for metric, gate in gates.items()
        ]
    if validation_passed is False:
        other.append("data validation failed (reports/validation.json)")
    if loadtest_passed is False:
        other.append("the load test broke its SLO (loadtest/results/summary.json)")
    return GateResult(checks, baseline_name if baseline is not None else None, other)


@dataclass(frozen=True)
class GateInputs:
    """Where the gate and the report read this change and its baseline from."""

    baseline: str
    params_file: Path = Path("params.yaml")
    metrics_file: Path = Path(METRICS_FILE)
    validation_file: Path = Path("reports/validation.json")
    loadtest_file: Path = Path("loadtest/results/summary.json")
    steps_file: Path | None = None
    """The CI steps' outcomes (`scripts/ci-pipeline.sh` writes ``STEPS_FILE``); None: none."""


@dataclass(frozen=True)
class Judgement:
    """The gate's verdict and what the report shows beside it."""

    result: GateResult
    metrics: dict[str, dict[str, Any]]
    """metric → {"old": baseline value or None, "new": this change's value or None}."""
    baseline_commit: str | None
    validation: dict[str, Any] | None
    loadtest: dict[str, Any] | None
    steps: list[Step]


def judge(inputs: GateInputs) -> Judgement:
    """Check this change against ``inputs.baseline`` as committed.

    The rules are the baseline's ``gate:`` (a change cannot loosen the gate
    that judges it; editing it is noted). A baseline that does not resolve
    fails closed; a baseline without ``metrics.json`` is the repository's
    first pipeline run: limits only, and said so.
    """
    steps = [] if inputs.steps_file is None else read_steps(inputs.steps_file)
    own_rules = load_params(inputs.params_file).gate
    validation = read_json(inputs.validation_file)
    loadtest = read_json(inputs.loadtest_file)
    commit = revision.resolve(inputs.baseline)
    pipeline_ok = not pipeline_failed(steps)
    current = read_json(inputs.metrics_file) if pipeline_ok else None
    notes: list[str] = []
    if commit is None:
        result = GateResult(
            [],
            inputs.baseline,
            [
                f"the baseline {inputs.baseline!r} does not resolve to a commit here: fetch it "
                "(git fetch origin <branch>; in Actions, check out with fetch-depth: 0). "
                "The gate fails closed without a baseline"
            ],
        )
        return Judgement(result, _diff(current, None), None, validation, loadtest, steps)
    rules_text = revision.show(commit, str(inputs.params_file))
    rules = (
        None
        if rules_text is None
        else parse_gate(rules_text.decode(), f"{inputs.baseline}:params.yaml")
    )
    if rules is None:
        rules = own_rules
        notes.append(f"{inputs.baseline} has no params.yaml: this change's gate rules apply")
    elif rules != own_rules:
        notes.append(
            f"this change edits `gate:` in params.yaml; the gate applies {inputs.baseline}'s "
            "rules until it is merged, and the edit needs a code owner's review (CODEOWNERS)"
        )
    baseline_text = revision.show(commit, str(inputs.metrics_file))
    baseline = None if baseline_text is None else _metric_values(json.loads(baseline_text))
    if baseline is None:
        notes.append(
            f"first pipeline run: {inputs.baseline} has no {inputs.metrics_file}, "
            "so the metrics are held to their limits only"
        )
    result = check_gate(
        current or {},
        baseline,
        rules,
        baseline_name=inputs.baseline,
        validation_passed=None if validation is None else bool(validation["success"]),
        loadtest_passed=None if loadtest is None else bool(loadtest["slo_met"]),
        steps=steps,
    )
    result = replace(result, notes=notes)
    return Judgement(result, _diff(current, baseline), commit, validation, loadtest, steps)


def _metric_values(data: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in data.items() if isinstance(v, int | float)}


def _diff(
    current: Mapping[str, Any] | None, baseline: Mapping[str, float] | None
) -> dict[str, dict[str, Any]]:
    now = _metric_values(current or {})
    then = baseline or {}
    return {m: {"old": then.get(m), "new": now.get(m)} for m in sorted(set(now) | set(then))}


def params_diff(commit: str | None, params_file: Path) -> dict[str, dict[str, Any]]:
    """Every parameter whose value differs between ``commit``'s params file and this one:
    dotted name → {"old", "new"} (None where a side lacks it)."""
    if commit is None:
        return {}
    committed = revision.show(commit, str(params_file))
    then = _flat(yaml.safe_load(committed) if committed else {})
    now = _flat(yaml.safe_load(params_file.read_text(encoding="utf-8")))
    return {
        name: {"old": then.get(name), "new": now.get(name)}
        for name in sorted(set(then) | set(now))
        if then.get(name) != now.get(name)
    }


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix.removesuffix("."): tree} if prefix else {}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat |= _flat(value, f"{prefix}{key}.")
    return flat


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON report if present (``None`` when the step did not run)."""
    return read_json_object(path) if path.is_file() else None
