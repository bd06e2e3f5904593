"""`churn drift` as a user runs it, on samples of the real data: exit codes, reports, errors.

Columns, levels and the shift come from the domain; the command's output is
read as plain text (`tests.support.cli.churn`), as on a CI runner.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.core.contract import Contract
from churn.core.data import clean
from churn.core.domain import Domain
from tests.support.bad_data import unknown
from tests.support.cli import churn
from tests.support.columns import rule_text


def _drift(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return churn("drift", *map(str, args), timeout=120)


@pytest.fixture(scope="module")
def reference_csv(raw_real: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """All the raw data in one file, in the raw format (quirks included)."""
    path = tmp_path_factory.mktemp("reference") / "reference.csv"
    raw_real.to_csv(path, index=False)
    return path


def _sample(raw: pd.DataFrame, contract: Contract, rows: int, seed: int) -> pd.DataFrame:
    """Records drawn with replacement, without id and label (as a scoring log would be)."""
    rng = np.random.default_rng(seed)
    sample = raw.iloc[rng.integers(0, len(raw), rows)]
    return sample.drop(columns=[contract.id.name, contract.label.name])


def test_a_sample_of_the_reference_exits_0_and_writes_both_reports(
    raw_real: pd.DataFrame, contract: Contract, reference_csv: Path, tmp_path: Path
) -> None:
    current = tmp_path / "current.csv"
    sample = _sample(raw_real, contract, 2_000, seed=0)
    sample.to_csv(current, index=False)  # raw format, quirks included
    report, out = tmp_path / "out" / "drift.html", tmp_path / "out" / "drift.json"

    result = _drift(
        "--reference", reference_csv, "--current", current, "--report", report, "--json", out
    )

    assert result.returncode == 0, result.stderr
    features = len(contract.feature_names)
    assert result.stdout.startswith(f"NO DRIFT: 0 of {features} features drifted")
    data = json.loads(out.read_text())
    assert data["drift"] is False
    assert data["current"]["rows"] == len(sample)
    page = report.read_text()
    assert "NO DRIFT" in page
    assert contract.title in page


def test_the_domains_shift_exits_1_naming_the_features(
    raw_real: pd.DataFrame, domain: Domain, reference_csv: Path, tmp_path: Path
) -> None:
    """The domain's strong shift (strength 1.0) must be caught, on the features it moves."""
    contract = domain.contract
    assert domain.scenarios is not None, "the domain room defines no scenarios (a shift)"
    sample = clean(_sample(raw_real, contract, 3_000, seed=1), domain)
    current = domain.scenarios.shift(sample, np.random.default_rng(1), 1.0)
    path = tmp_path / "current.csv"
    current.to_csv(path, index=False)
    report, out = tmp_path / "drift.html", tmp_path / "drift.json"

    result = _drift(
        "--reference", reference_csv, "--current", path, "--report", report, "--json", out
    )

    assert result.returncode == 1, result.stderr
    data = json.loads(out.read_text())
    drifted = data["drifted_features"]
    assert drifted and set(drifted) <= set(domain.scenarios.shifted_features)
    features = len(contract.feature_names)
    headline = f"DRIFT: {len(drifted)} of {features} features drifted ({', '.join(drifted)})"
    assert result.stdout.startswith(headline)
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == features  # one chart per feature
    assert page.count('<tr class="drifted">') == len(drifted)
    # Self-contained: nothing to fetch, nothing to run.
    for needle in ("<script", "<link", "src=", "url(http", "@import"):
        assert needle not in page
    ids = re.findall(r'id="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # the charts' SVG ids do not collide


def bad_currents(sample: pd.DataFrame, contract: Contract) -> list[tuple[pd.DataFrame, str]]:
    """(current data, what the one-line error must say), for this contract's columns."""
    cases = []
    for numeric in contract.numeric[:1]:
        cases += [
            (sample.drop(columns=[numeric.name]), f"missing columns {numeric.name}"),
            (sample.assign(**{numeric.name: "cheap"}), rule_text(numeric)),
        ]
    for categorical in contract.categorical[:1]:
        level = unknown(categorical.levels, "not-a-level")
        cases.append(
            (sample.assign(**{categorical.name: level}), f"{categorical.name} must be one of")
        )
    return cases


def test_bad_current_data_exits_2_with_one_line(
    raw_real: pd.DataFrame, contract: Contract, reference_csv: Path, tmp_path: Path
) -> None:
    cases = bad_currents(_sample(raw_real, contract, 100, seed=2), contract)
    assert cases
    for number, (current, message) in enumerate(cases):
        path = tmp_path / f"current-{number}.csv"
        current.to_csv(path, index=False)
        result = _drift("--reference", reference_csv, "--current", path)
        assert result.returncode == 2, message
        assert message in result.stderr
        assert str(path) in result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), ("", "the file is empty"), ("a,b\n1,2\n", "missing columns")],
)
def test_unreadable_input_exits_2(
    reference_csv: Path, tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "current.csv"
    if content is not None:
        path.write_text(content)
    result = _drift("--reference", reference_csv, "--current", path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_option_is_a_usage_error(reference_csv: Path) -> None:
    result = _drift("--reference", reference_csv)
    assert result.returncode == 2
    assert "Missing option '--current'" in result.stderr
