"""`make adopt` on a table the project has never seen, in a copy of the project: then the
pipeline and the fast suite pass there with no edit, and the example is gone.

The table is generated from the suite's synthetic domain and made as real
tables are: no id column, blanks written as ``?`` in a numeric column,
blanks in a categorical one, a rare level, a column of free text and one
that is empty. The copy runs what ``make demo`` runs (``dvc repro``, then
``churn summary``) with this environment's tools, then the fast suite.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from churn.core.contract import Contract, load_contract
from churn.pipeline.synth import generate
from tests.integration.test_fork import ALLOWED, example_names
from tests.support.domains import synthetic_domain
from tests.support.project import Repo, copy_project, on_its_own_code

pytestmark = pytest.mark.integration

ROWS = 3000
RARE_LEVEL = "a rare level"


def real_table(contract: Contract, rows: int, seed: int) -> pd.DataFrame:
    """Generated records of ``contract`` with the untidiness of a real extract."""
    rng = np.random.default_rng(seed)
    table = generate(contract, rows, seed).astype(object).drop(columns=[contract.id.name])
    ruled = {c for r in contract.implications for c in (r.when, *r.then)}
    numeric = contract.numeric[-1].name
    categorical = next(c.name for c in contract.categorical if c.name not in ruled)
    text = table[numeric].astype(str)
    table[numeric] = text.where(rng.random(rows) > 0.05, "?")
    table[categorical] = table[categorical].where(rng.random(rows) > 0.03, "")
    table.loc[table.index[:4], categorical] = RARE_LEVEL
    table["remarks"] = [f"remark {i}" for i in range(rows)]
    table["unused"] = ""
    return table


@pytest.fixture(scope="module")
def adopted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    project = on_its_own_code(copy_project(tmp_path_factory.mktemp("adopted")))
    source = synthetic_domain().contract
    table = tmp_path_factory.mktemp("table") / "applications.csv"
    real_table(source, ROWS, seed=5).to_csv(table, index=False)

    result = project.run(
        "churn", "adopt", "--data", str(table),
        "--label", source.label.name, "--positive", source.label.positive,
    )  # fmt: skip
    print(result.stdout, result.stderr)
    project.run("git", "add", "--all")
    project.run("git", "commit", "--quiet", "--message", "Adopt our table")
    project.dvc("repro")  # what `make demo` runs, then its summary
    project.run("churn", "summary")
    yield project


def test_the_adopted_contract_describes_the_table(adopted: Repo) -> None:
    contract = load_contract(adopted.root / "src/churn/domain/contract.yaml")
    source = synthetic_domain().contract

    assert contract.label.name == source.label.name
    assert set(contract.feature_names) == set(source.feature_names)
    assert any(c.nullable for c in contract.numeric)
    assert any(c.nullable for c in contract.categorical)
    assert any(RARE_LEVEL in c.levels for c in contract.categorical)


def test_the_pipeline_ran_on_the_new_table_and_passes_its_gate(adopted: Repo) -> None:
    metrics = json.loads((adopted.root / "metrics.json").read_text())
    assert metrics["roc_auc"] > 0.6
    # HEAD is the adoption: no metrics.json yet, so the new gate's limits alone judge.
    result = adopted.run("churn", "gate", "--baseline", "HEAD", check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_no_file_outside_markdown_names_the_example(adopted: Repo, contract: Contract) -> None:
    """``contract`` is the room this suite runs on: after adopting, nothing names it."""
    patterns = [arg for name in example_names(contract) for arg in ("-e", name)]
    found = adopted.run(
        "git", "grep", "-c", "-I", "-w", "-F", *patterns, "--", *ALLOWED, check=False
    )
    assert found.returncode == 1, f"lines naming the example, per file:\n{found.stdout}"


def test_the_fast_suite_passes_in_the_adopted_project(adopted: Repo) -> None:
    result = adopted.run(
        sys.executable, "-m", "pytest", "-m", "not integration and not container",
        "-q", "-p", "no:cacheprovider", check=False,
    )  # fmt: skip
    summary = result.stdout.strip().splitlines()[-1:] or ["(no output)"]
    assert result.returncode == 0, f"{summary[0]}\n{result.stdout[-4000:]}"
    print(f"the fast suite in the adopted project: {summary[0]}")
