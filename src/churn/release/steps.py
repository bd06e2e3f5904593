"""What each step of the CI pipeline did: ``reports/ci-steps.tsv``.

`scripts/ci-pipeline.sh` appends one line per step as it runs
(``name<TAB>passed|failed|skipped<TAB>detail``), so the report and the gate,
which run last, know that the pipeline failed at validation or that the load
test crashed even when the files those steps write are missing or stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from churn.core.errors import DataError

if TYPE_CHECKING:
    from pathlib import Path

STEPS_FILE = "reports/ci-steps.tsv"
Status = Literal["passed", "failed", "skipped"]
STATUSES: tuple[Status, ...] = ("passed", "failed", "skipped")
# The step that runs `dvc repro`: when it fails, the metrics and model on disk
# are not this change's.
PIPELINE = "pipeline"


@dataclass(frozen=True)
class Step:
    name: str
    status: Status
    detail: str = ""

    def render(self) -> str:
        mark = {"passed": "✅", "failed": "❌", "skipped": "⏭️"}[self.status]
        return f"{mark} {self.name}: {self.status}" + (f" ({self.detail})" if self.detail else "")


def read_steps(path: Path) -> list[Step]:
    """The steps recorded in ``path``; empty when there is no such file (a plain `make gate`)."""
    if not path.is_file():
        return []
    steps = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        name, status, detail = [*line.split("\t", 2), "", ""][:3]
        if status not in STATUSES:
            raise DataError(f"{path}:{number}: status {status!r} is not one of {STATUSES}")
        steps.append(Step(name, status, detail.strip()))
    return steps


def failed(steps: list[Step]) -> list[Step]:
    return [step for step in steps if step.status == "failed"]


def pipeline_failed(steps: list[Step]) -> bool:
    return any(step.name == PIPELINE and step.status != "passed" for step in steps)
