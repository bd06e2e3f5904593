"""`churn validate PATH` as a user runs it: exit codes and messages, never a traceback."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from churn.core.contract import Contract
from churn.core.data import read_csv
from tests.support.bad_data import unknown
from tests.support.cli import churn
from tests.support.columns import free_categorical


def _validate(*args: str) -> subprocess.CompletedProcess[str]:
    return churn("validate", *args, timeout=120)


def test_valid_file_exits_0_and_writes_a_report(sample_csv: Path, tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.json"
    result = _validate(str(sample_csv), "--report", str(report))
    assert result.returncode == 0, result.stderr
    rows = len(read_csv(sample_csv))
    assert result.stdout.startswith("PASSED")
    assert f"checks on {rows} rows" in result.stdout
    assert '"success": true' in report.read_text()


def test_invalid_file_exits_1_naming_column_rule_and_values(
    raw_sample: pd.DataFrame, contract: Contract, tmp_path: Path
) -> None:
    column = free_categorical(contract) or contract.categorical[-1]
    level = unknown(column.levels, "not-a-level")
    raw_sample.loc[raw_sample.index[:3], column.name] = level
    bad = tmp_path / "bad.csv"
    raw_sample.to_csv(bad, index=False)
    result = _validate(str(bad))
    assert result.returncode == 1
    assert f"- {column.name}: one of {list(column.levels)}" in result.stdout
    assert "3 offending rows" in result.stdout
    assert repr(level) in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("", "the file is empty"),
        (b"\xff\xfe\x00garbage\x00\n\xff", "not a readable CSV file"),
        ("dir", "is a directory"),
    ],
)
def test_unreadable_input_exits_2_with_one_line(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "input.csv"
    if content == "dir":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    result = _validate(str(path))
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}: {message}")


def test_header_only_file_exits_1_with_no_rows(sample_csv: Path, tmp_path: Path) -> None:
    header_only = tmp_path / "header.csv"
    header_only.write_text(sample_csv.read_text().splitlines()[0] + "\n")
    result = _validate(str(header_only))
    assert result.returncode == 1
    assert "- (table): at least one row" in result.stdout


def test_missing_argument_is_a_usage_error() -> None:
    result = _validate()
    assert result.returncode == 2
    assert "Missing argument" in result.stderr


def test_several_files_are_checked_as_one_table(
    sample_csv: Path, contract: Contract, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.csv"
    copy.write_bytes(sample_csv.read_bytes())
    result = _validate(str(sample_csv), str(copy))
    assert result.returncode == 1
    assert f"- {contract.id.name}: unique" in result.stdout
    assert f"checks on {2 * len(read_csv(sample_csv))} rows" in result.stdout
