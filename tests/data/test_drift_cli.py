"""`churn drift` as a user runs it, on samples of the real file: exit codes, reports, errors."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn import contract
from churn.data import clean
from tests.conftest import RAW_DATA

CHURN = str(Path(sys.executable).with_name("churn"))


def _drift(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHURN, "drift", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _sample(raw: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """Customers drawn with replacement, without id and label (as a scoring log would be)."""
    rng = np.random.default_rng(seed)
    sample = raw.iloc[rng.integers(0, len(raw), rows)]
    return sample.drop(columns=[contract.ID_COLUMN, contract.LABEL.name])


def test_a_sample_of_the_reference_exits_0_and_writes_both_reports(
    raw_real: pd.DataFrame, tmp_path: Path
) -> None:
    current = tmp_path / "current.csv"
    _sample(raw_real, 2_000, seed=0).to_csv(current, index=False)  # raw format, quirks included
    report, out = tmp_path / "out" / "drift.html", tmp_path / "out" / "drift.json"

    result = _drift(
        "--reference", RAW_DATA, "--current", current, "--report", report, "--json", out
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("NO DRIFT: 0 of 19 features drifted")
    data = json.loads(out.read_text())
    assert data["drift"] is False
    assert data["current"]["rows"] == 2_000
    assert "NO DRIFT" in report.read_text()


def test_a_price_rise_exits_1_naming_the_features(raw_real: pd.DataFrame, tmp_path: Path) -> None:
    """40% of contract customers go month-to-month; month-to-month prices rise 10-20%."""
    rng = np.random.default_rng(1)
    current = clean(_sample(raw_real, 3_000, seed=1))
    moves = current["Contract"].ne("Month-to-month") & (rng.random(len(current)) < 0.4)
    current.loc[moves, "Contract"] = "Month-to-month"
    rise = np.where(current["Contract"].eq("Month-to-month"), rng.uniform(1.1, 1.2, 3_000), 1)
    current["MonthlyCharges"] = (current["MonthlyCharges"] * rise).round(2)
    path = tmp_path / "current.csv"
    current.to_csv(path, index=False)
    report, out = tmp_path / "drift.html", tmp_path / "drift.json"

    result = _drift("--reference", RAW_DATA, "--current", path, "--report", report, "--json", out)

    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith("DRIFT: 2 of 19 features drifted (MonthlyCharges, Contract)")
    data = json.loads(out.read_text())
    assert data["drifted_features"] == ["MonthlyCharges", "Contract"]
    assert data["thresholds"]["min_drifted_features"] == 1
    page = report.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 19  # one chart per feature
    assert page.count('<tr class="drifted">') == 2
    # Self-contained: nothing to fetch, nothing to run.
    for needle in ("<script", "<link", "src=", "url(http", "@import"):
        assert needle not in page
    ids = re.findall(r'id="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # the charts' SVG ids do not collide


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["tenure"]), "missing columns tenure"),
        (lambda f: f.assign(Contract="Weekly"), "Contract must be one of"),
        (lambda f: f.assign(MonthlyCharges="cheap"), "MonthlyCharges must be a number"),
    ],
)
def test_bad_current_data_exits_2_with_one_line(
    raw_real: pd.DataFrame,
    tmp_path: Path,
    change: Callable[[pd.DataFrame], pd.DataFrame],
    message: str,
) -> None:
    path = tmp_path / "current.csv"
    change(_sample(raw_real, 100, seed=2)).to_csv(path, index=False)
    result = _drift("--reference", RAW_DATA, "--current", path)
    assert result.returncode == 2
    assert message in result.stderr
    assert str(path) in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), ("", "the file is empty"), ("a,b\n1,2\n", "missing columns")],
)
def test_unreadable_input_exits_2(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "current.csv"
    if content is not None:
        path.write_text(content)
    result = _drift("--reference", RAW_DATA, "--current", path)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_option_is_a_usage_error() -> None:
    result = _drift("--reference", RAW_DATA)
    assert result.returncode == 2
    assert "Missing option '--current'" in result.stderr
