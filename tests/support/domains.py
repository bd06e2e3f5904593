"""The suite's second domain room (synthetic loans) and generated data for any domain."""

from __future__ import annotations

import shutil
from pathlib import Path

from churn.core.contract import Contract
from churn.core.domain import Domain, load_domain
from churn.pipeline.synth import generate
from tests.support.paths import REPO

SYNTHETIC_ROOM = REPO / "tests" / "domains" / "synthetic"
"""A domain room unlike the example; ``CHURN_DOMAIN`` may name it."""


def synthetic_domain() -> Domain:
    """The synthetic loan domain, loaded from its folder as ``CHURN_DOMAIN`` would."""
    return load_domain(str(SYNTHETIC_ROOM))


def write_generated(path: Path, contract: Contract, rows: int, seed: int = 0) -> Path:
    """``rows`` generated records of ``contract`` as a raw CSV file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    generate(contract, rows, seed).to_csv(path, index=False)
    return path


def install_room(room: Path, project: Path) -> None:
    """Replace ``project``'s domain room (src/churn/domain) with the files of ``room``."""
    target = project / "src" / "churn" / "domain"
    shutil.rmtree(target)
    shutil.copytree(room, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
