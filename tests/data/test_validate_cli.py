"""`churn validate PATH` as a user runs it: exit codes and messages, never a traceback."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import FIXTURE

CHURN = str(Path(sys.executable).with_name("churn"))


def _validate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHURN, "validate", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_valid_file_exits_0_and_writes_a_report(tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.json"
    result = _validate(str(FIXTURE), "--report", str(report))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("PASSED")
    assert '"success": true' in report.read_text()


def test_invalid_file_exits_1_naming_column_rule_and_values(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(FIXTURE.read_text().replace("Two year", "Weekly", 1))
    result = _validate(str(bad))
    assert result.returncode == 1
    assert "- Contract: one of ['Month-to-month', 'One year', 'Two year']" in result.stdout
    assert "'Weekly'" in result.stdout
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        ("", "the file is empty"),
        (b"\xff\xfe\x00garbage\x00\n\xff", "not a readable CSV file"),
    ],
)
def test_unreadable_input_exits_2_with_one_line(
    tmp_path: Path, content: str | bytes | None, message: str
) -> None:
    path = tmp_path / "input.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    result = _validate(str(path))
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_argument_is_a_usage_error() -> None:
    result = _validate()
    assert result.returncode == 2
    assert "Missing argument" in result.stderr


def test_several_files_are_checked_as_one_table(tmp_path: Path) -> None:
    copy = tmp_path / "copy.csv"
    shutil.copy(FIXTURE, copy)
    result = _validate(str(FIXTURE), str(copy))
    assert result.returncode == 1
    assert "- customerID: unique" in result.stdout
