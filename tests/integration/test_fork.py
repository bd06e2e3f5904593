"""A fork that replaces the domain room, the raw data and the gate, and edits nothing else.

The template's promise (README, "Adapt this template to your data"): a fork
edits one folder (``src/churn/domain/``), puts its data in ``data/raw/`` and
sets the gate in ``params.yaml``; the pipeline runs and every test passes.
This test is that fork: a copy of the project as a fresh clone has it, with
the synthetic loan room (tests/domains/synthetic) in place of the example's
and a generated CSV in place of the example's data. In the copy it runs the
pipeline (``dvc repro``) and the suite (all but the integration tests), and
checks that no file outside Markdown and the test domains still names one of
the example's columns: a machinery file that did would fail here or leak
the example into every fork.

The fork also changes a model parameter before ``dvc repro``, as a pull
request that tunes the model does: one hyperparameter of the configured
estimator (``train.logistic_regression.C`` in the template) times
`PARAMETER_FACTOR`, read from the copied ``params.yaml`` and written back
with the rest unchanged. So the suite is proven green on a parameter other
than the committed one: no test may hard-code a parameter or a metric.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from churn.core.artifacts import CARD_FILE, ModelCard
from churn.core.contract import Contract
from churn.core.domain import Domain
from churn.core.params import TrainParams, load_params
from tests.support.domains import SYNTHETIC_ROOM, install_room, synthetic_domain, write_generated
from tests.support.params import nudged, write_params
from tests.support.paths import REPO
from tests.support.project import Repo, copy_project, on_its_own_code

pytestmark = pytest.mark.integration

ROWS = 3000  # about what a small real table has: enough for every test's windows
FORK_SUITE_ENV = "CHURN_FORK_SUITE"  # "full": integration tests too (make test-fork)
FORK_SUITE_TIMEOUT_S = 2400  # the whole suite in the fork: ~10 min on 2 busy cores
SEED = 0
PARAMETER_FACTOR = 0.3  # the change a tuning pull request makes to one hyperparameter
# Where the example's names may stay: prose, and the rooms the suite runs on.
ALLOWED = (
    ":(exclude)*.md",
    ":(exclude)tests/domains/",
)


@pytest.fixture(scope="module")
def fork(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """The fork, committed, after ``dvc repro`` and with its gate set from its metrics."""
    project = on_its_own_code(copy_project(tmp_path_factory.mktemp("fork")))

    # The forker's three edits: the room, the data, (below) the gate.
    install_room(SYNTHETIC_ROOM, project.root)
    for old in (project.root / "data" / "raw").glob("*.csv"):
        old.unlink()
    write_generated(
        project.root / "data" / "raw" / "loans.csv", synthetic_domain().contract, ROWS, SEED
    )
    project.run("git", "add", "--all")
    project.run("git", "commit", "--quiet", "--message", "Our domain and data")
    # A pull request that tunes the model: the suite must not depend on the value.
    change_a_model_parameter(project.root / "params.yaml")
    load_params(project.root / "params.yaml")  # still valid
    project.run("git", "commit", "--quiet", "--all", "--message", "Tune the model")

    project.dvc("repro")
    # The gate is the forker's: set from what this data gives, with room for
    # twice the regression the template allows between two models.
    params = load_params(project.root / "params.yaml")
    metrics = json.loads((project.root / "metrics.json").read_text())
    gate = {}
    for name, rule in params.gate.items():
        limit = nudged(rule, float(metrics[name]), -2 * rule.max_regression)
        gate[name] = rule.model_copy(update={"limit": round(limit, 3)})
    write_params(params.model_copy(update={"gate": gate}), project.root / "params.yaml")
    project.run("git", "add", "--all")
    project.run("git", "commit", "--quiet", "--message", "Pipeline outputs and our gate")
    yield project


def tuned_parameter(train: dict[str, Any]) -> tuple[str, str]:
    """The hyperparameter the fork changes: the configured estimator's first positive
    float (``C`` for logistic regression), else its first positive integer."""
    estimator = train["estimator"]
    section = train[estimator]
    numbers = {k: v for k, v in section.items() if type(v) in (int, float) and v > 0}
    floats = [k for k, v in numbers.items() if isinstance(v, float)]
    assert numbers, f"train.{estimator} has no positive numeric parameter to change"
    return estimator, (floats or list(numbers))[0]


def tuned_value(value: float) -> float:
    """``value`` times `PARAMETER_FACTOR` (an integer stays a positive integer)."""
    if isinstance(value, int):
        return max(1, round(value * PARAMETER_FACTOR))
    return value * PARAMETER_FACTOR


def change_a_model_parameter(params_file: Path) -> None:
    """`tuned_parameter` times `PARAMETER_FACTOR` in ``params_file``, every other value kept."""
    raw = yaml.safe_load(params_file.read_text())
    estimator, name = tuned_parameter(raw["train"])
    section = raw["train"][estimator]
    section[name] = tuned_value(section[name])
    params_file.write_text(yaml.safe_dump(raw, sort_keys=False))


def test_the_fork_trained_its_model_on_the_changed_parameter(fork: Repo) -> None:
    """Guards the test itself: the suite below ran on a parameter the template does not set."""
    ours = yaml.safe_load((REPO / "params.yaml").read_text())["train"]
    estimator, name = tuned_parameter(ours)
    expected = tuned_value(ours[estimator][name])
    assert expected != ours[estimator][name]

    card = ModelCard.read(fork.root / "models" / CARD_FILE)

    assert card.estimator == estimator
    assert card.params[estimator][name] == pytest.approx(expected)
    assert TrainParams.model_validate(card.params) == load_params(fork.root / "params.yaml").train


def test_the_room_copied_is_the_synthetic_one(fork: Repo) -> None:
    """Guards the test itself: the fork really runs on another domain."""
    room = fork.root / "src" / "churn" / "domain"

    assert (room / "contract.yaml").read_text() == (SYNTHETIC_ROOM / "contract.yaml").read_text()
    assert [p.name for p in (fork.root / "data" / "raw").glob("*.csv")] == ["loans.csv"]
    assert (room / "__init__.py").read_text() == (SYNTHETIC_ROOM / "__init__.py").read_text()


def test_the_pipeline_trains_a_model_with_signal(fork: Repo) -> None:
    metrics = json.loads((fork.root / "metrics.json").read_text())

    assert metrics["roc_auc"] > 0.5
    status = fork.dvc("status", "--json")
    assert json.loads(status.stdout or "{}") == {}, "the gate edit re-runs no stage"


def example_names(contract: Contract) -> list[str]:
    """What only the example's data calls things: its column names and levels, but
    not plain words ("Yes", "gender", "Contract" is also the machinery's type),
    numbers (a 0/1 flag's levels) or names of one or two characters."""
    names = [contract.id.name, *contract.feature_names]
    names += sorted({level for c in contract.categorical for level in c.levels})
    return [name for name in names if not _plain(name)]


def _plain(name: str) -> bool:
    """A name any code may spell: a word, a number, an ordinal ("1st"), or one or two
    characters."""
    try:
        float(name)
    except ValueError:
        ordinal = re.fullmatch(r"[0-9]+(st|nd|rd|th)", name) is not None
        return ordinal or len(name) <= 2 or (name.isalpha() and name[1:].islower())
    return True


def test_no_file_outside_the_domains_names_the_example(fork: Repo, contract: Contract) -> None:
    """``contract`` is the room this suite runs on (the example, in this repository)."""
    patterns = [arg for name in example_names(contract) for arg in ("-e", name)]

    found = fork.run("git", "grep", "-c", "-I", "-w", "-F", *patterns, "--", *ALLOWED, check=False)

    assert found.returncode == 1, (
        f"lines naming the example, per file:\n{found.stdout}{found.stderr}"
    )


def test_no_file_outside_the_domains_speaks_the_examples_vocabulary(
    fork: Repo, domain: Domain
) -> None:
    """Prose words too (the room's ``vocabulary``), in any case: the machinery says
    "record", "outcome", "positive"."""
    assert domain.scenarios is not None
    if not domain.scenarios.vocabulary:
        pytest.skip("the domain room lists no vocabulary (its scenarios.py VOCABULARY)")
    words = [arg for word in domain.scenarios.vocabulary for arg in ("-e", word)]

    found = fork.run("git", "grep", "-c", "-I", "-i", "-F", *words, "--", *ALLOWED, check=False)

    assert found.returncode == 1, f"lines in the example's words, per file:\n{found.stdout}"


def test_the_suite_passes_in_the_fork(fork: Repo) -> None:
    """The fast suite in `make test`; all of it (real servers included) with
    ``CHURN_FORK_SUITE=full``, as `make test-fork` runs it in CI."""
    full = os.environ.get(FORK_SUITE_ENV) == "full"
    selection = "not container" if full else "not integration and not container"
    result = fork.run(
        sys.executable,
        "-m",
        "pytest",
        "-m",
        selection,
        # The fork's own copies of this test and of the adoption test would copy
        # the project again (both run once, in the suite that started this one).
        f"--ignore={Path(__file__).relative_to(REPO).as_posix()}",
        f"--ignore={Path(__file__).with_name('test_adopt.py').relative_to(REPO).as_posix()}",
        "-q",
        "-p",
        "no:cacheprovider",
        check=False,
        timeout=FORK_SUITE_TIMEOUT_S,
    )

    summary = result.stdout.strip().splitlines()[-1:] or ["(no output)"]
    assert result.returncode == 0, f"{summary[0]}\n{_failures(result)}"
    assert " passed" in summary[0]
    print(f"the suite in the fork ({selection}): {summary[0]}")  # shown with -s / -rP


def _failures(result: subprocess.CompletedProcess[str]) -> str:
    """The suite's short summary of failures (or its whole output if it has none)."""
    lines = result.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if "short test summary" in line), None)
    return "\n".join(lines[start:]) if start is not None else result.stdout + result.stderr
