"""The merge gate: does this model pass its limits and hold its ground against the baseline?

The rules are data (`params.yaml`'s ``gate``: one `MetricGate` per metric);
`check_gate` is a pure function of the current metrics, the baseline's (or
none, for a first pull request) and the outcomes of validation and the load
test, so it is tested on fixtures and runs the same in CI and on a laptop.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn.core.errors import DataError
from churn.core.jsonio import read_json_object

if TYPE_CHECKING:
    from collections.abc import Mapping

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

    @property
    def passed(self) -> bool:
        return not self.other_problems and all(check.passed for check in self.checks)

    def problems(self) -> list[str]:
        return [p for check in self.checks for p in check.problems] + self.other_problems

    def render(self) -> str:
        against = f"against {self.baseline}" if self.baseline else "no baseline yet"
        if self.passed:
            return f"GATE PASSED ({len(self.checks)} metrics, {against})"
        lines = [f"GATE FAILED ({against})"]
        lines += [f"  - {problem}" for problem in self.problems()]
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
) -> GateResult:
    """Check every gated metric; ``None`` for a check that did not run means no verdict.

    A metric the baseline lacks (newly added) is held to its limit only.
    """
    checks = [
        check_metric(metric, current.get(metric), baseline.get(metric) if baseline else None, gate)
        for metric, gate in gates.items()
    ]
    other = []
    if validation_passed is False:
        other.append("data validation failed (reports/validation.json)")
    if loadtest_passed is False:
        other.append("the load test broke its SLO (loadtest/results/summary.json)")
    return GateResult(checks, baseline_name if baseline is not None else None, other)


def metrics_diff(baseline: str) -> dict[str, dict[str, Any]]:
    """``dvc metrics diff <baseline> --all --json`` for metrics.json: {metric: {old, new}}.

    Empty when the baseline revision does not exist or has no metrics yet
    (a first pull request).
    """
    if not _revision_exists(baseline):
        return {}
    output = _run_json([_dvc(), "metrics", "diff", baseline, "--all", "--json"])
    diff: dict[str, dict[str, Any]] = output.get(METRICS_FILE, {})
    return diff


def params_diff(baseline: str) -> dict[str, dict[str, Any]]:
    """``dvc params diff <baseline> --json`` for params.yaml: {param: {old, new}}."""
    if not _revision_exists(baseline):
        return {}
    output = _run_json([_dvc(), "params", "diff", baseline, "--json"])
    diff: dict[str, dict[str, Any]] = output.get("params.yaml", {})
    return diff


def baseline_values(diff: Mapping[str, Mapping[str, Any]]) -> dict[str, float] | None:
    """The baseline's metric values from a metrics diff, or None when it has none."""
    values = {name: float(d["old"]) for name, d in diff.items() if d.get("old") is not None}
    return values or None


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON report if present (``None`` when the step did not run)."""
    return read_json_object(path) if path.is_file() else None


def _dvc() -> str:
    """The dvc installed beside this interpreter (so an unactivated .venv works), else PATH's."""
    beside = Path(sys.executable).with_name("dvc")
    return str(beside) if beside.is_file() else "dvc"


def _revision_exists(revision: str) -> bool:
    result = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def _run_json(command: list[str]) -> dict[str, Any]:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise DataError(f"{command[0]} not found: run `make install`") from None
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise DataError(f"{' '.join(command)} failed: {reason}")
    data: dict[str, Any] = json.loads(result.stdout or "{}")
    return data
