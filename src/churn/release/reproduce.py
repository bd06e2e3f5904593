"""Did the change commit what the pipeline reproduces?

After `dvc repro`, `dvc.lock` and every pipeline output Git tracks (metrics,
plot data: the `cache: false` outputs) must be byte-identical to the
committed files. Every output is a function of the code, the data and the
parameters, so a difference means one of two things, told apart here:

- the committed `dvc.lock` describes other inputs (a stage's code, data or
  parameters changed and nobody re-ran the pipeline): run `make repro` and
  commit;
- the same inputs gave other bytes (a lock made on another platform, or a
  stage that is not deterministic).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from churn.release import revision

LOCK = "dvc.lock"
FIX = "run `make repro` and commit dvc.lock and the files it lists"


@dataclass(frozen=True)
class Reproduction:
    commit: str
    differences: list[str]

    @property
    def passed(self) -> bool:
        return not self.differences

    def render(self) -> str:
        if self.passed:
            return (
                f"REPRODUCED: the pipeline's committed files match what it produced ({self.commit})"
            )
        lines = ["NOT REPRODUCED: the committed pipeline files differ from what it produced"]
        return "\n".join([*lines, *(f"  - {line}" for line in self.differences)])


def _stages(text: bytes | None) -> dict[str, dict[str, Any]]:
    if text is None:
        return {}
    data = yaml.safe_load(text) or {}
    stages: dict[str, dict[str, Any]] = data.get("stages", {}) if isinstance(data, dict) else {}
    return stages


def _outputs(stages: dict[str, dict[str, Any]]) -> list[str]:
    return [out["path"] for stage in stages.values() for out in stage.get("outs", [])]


def lock_differences(committed: bytes | None, produced: bytes | None) -> list[str]:
    """Why two `dvc.lock` texts differ, stage by stage; empty when they are equal."""
    if committed == produced:
        return []
    if committed is None:
        return [f"{LOCK} is not committed: {FIX}"]
    if produced is None:
        return [f"{LOCK} is missing: the pipeline did not run"]
    then, now = _stages(committed), _stages(produced)
    stale = [
        name
        for name in sorted(set(then) | set(now))
        if {k: v for k, v in then.get(name, {}).items() if k != "outs"}
        != {k: v for k, v in now.get(name, {}).items() if k != "outs"}
    ]
    if stale:
        return [
            f"{LOCK}: committed for other inputs (code, data or params) of "
            f"{', '.join(stale)}: {FIX}"
        ]
    other = [name for name in sorted(now) if then.get(name) != now.get(name)]
    if not other:  # same content, other formatting
        return [f"{LOCK}: formatted differently from what DVC writes: {FIX}"]
    return [
        f"{LOCK}: the same inputs gave other output bytes in {', '.join(other)} "
        "(a lock committed from another platform, or a stage that is not deterministic): "
        "commit the dvc.lock this run produced (docs/ci.md)"
    ]


def check(commit: str = "HEAD", root: Path = Path()) -> Reproduction:
    """Compare the working tree's pipeline files (after `dvc repro`) with ``commit``'s."""
    produced_lock = _read(root / LOCK)
    differences = lock_differences(revision.show(commit, LOCK), produced_lock)
    if differences:  # the outputs follow from the lock: name the cause, not each file
        return Reproduction(commit, differences)
    for path in revision.tracked(_outputs(_stages(produced_lock))):
        if revision.show(commit, path) != _read(root / path):
            differences.append(f"{path}: differs from the committed file: {FIX}")
    return Reproduction(commit, differences)


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.is_file() else None
