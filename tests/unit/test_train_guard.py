"""`train` only trains on data that a validation report says passed, by content hash."""

import json
from pathlib import Path

import pytest

from churn.artifacts import file_sha256
from churn.errors import ValidationFailedError
from churn.train import require_passed
from tests.conftest import FIXTURE


def _report(tmp_path: Path, success: bool, sha256: dict[str, str]) -> Path:
    path = tmp_path / "validation.json"
    path.write_text(json.dumps({"success": success, "sha256": sha256}))
    return path


def test_a_passing_report_about_this_file_lets_training_start(tmp_path: Path) -> None:
    require_passed(_report(tmp_path, True, {"train.csv": file_sha256(FIXTURE)}), FIXTURE)


def test_a_failing_report_stops_training(tmp_path: Path) -> None:
    report = _report(tmp_path, False, {"train.csv": file_sha256(FIXTURE)})
    with pytest.raises(ValidationFailedError, match="failed validation"):
        require_passed(report, FIXTURE)


def test_a_report_about_other_data_stops_training(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailedError, match="does not cover"):
        require_passed(_report(tmp_path, True, {"train.csv": "0" * 64}), FIXTURE)


def test_a_missing_report_stops_training(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailedError, match="cannot read validation report"):
        require_passed(tmp_path / "absent.json", FIXTURE)
