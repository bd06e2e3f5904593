"""`train` only trains on data that a validation report says passed, by content hash."""

import json
from pathlib import Path

import pytest

from churn.core.artifacts import file_sha256
from churn.core.errors import ValidationFailedError
from churn.pipeline.train import require_passed


def _report(tmp_path: Path, success: bool, sha256: dict[str, str]) -> Path:
    path = tmp_path / "validation.json"
    path.write_text(json.dumps({"success": success, "sha256": sha256}))
    return path


def test_a_passing_report_about_this_file_lets_training_start(
    tmp_path: Path, sample_csv: Path
) -> None:
    require_passed(_report(tmp_path, True, {"train.csv": file_sha256(sample_csv)}), sample_csv)


def test_a_failing_report_stops_training(tmp_path: Path, sample_csv: Path) -> None:
    report = _report(tmp_path, False, {"train.csv": file_sha256(sample_csv)})
    with pytest.raises(ValidationFailedError, match="failed validation"):
        require_passed(report, sample_csv)


def test_a_report_about_other_data_stops_training(tmp_path: Path, sample_csv: Path) -> None:
    with pytest.raises(ValidationFailedError, match="does not cover"):
        require_passed(_report(tmp_path, True, {"train.csv": "0" * 64}), sample_csv)


def test_a_report_about_an_earlier_version_of_the_file_stops_training(
    tmp_path: Path, sample_csv: Path
) -> None:
    data = tmp_path / "train.csv"
    data.write_bytes(sample_csv.read_bytes())
    report = _report(tmp_path, True, {"train.csv": file_sha256(data)})
    require_passed(report, data)
    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[:-1]))  # one record fewer
    with pytest.raises(ValidationFailedError, match="does not cover"):
        require_passed(report, data)


def test_a_missing_or_broken_report_stops_training(tmp_path: Path, sample_csv: Path) -> None:
    with pytest.raises(
        ValidationFailedError, match=r"absent\.json: not found; no validation report"
    ):
        require_passed(tmp_path / "absent.json", sample_csv)
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ValidationFailedError, match=r"broken\.json: not valid JSON"):
        require_passed(broken, sample_csv)
