"""MLflow tracking against a real (SQLite) store."""

from pathlib import Path

import pytest

from churn.core.artifacts import RunRecord
from churn.registry import tracking

pytestmark = pytest.mark.integration


def test_evaluation_of_a_model_whose_run_is_gone_warns_and_continues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record = RunRecord(
        tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}",
        experiment="experiment",
        run_id="0" * 32,
        model_uri="models:/m-0",
        registered_model="classifier",
        version="1",
        model_sha256="0" * 64,
    )
    (tmp_path / "plots").mkdir()
    tracking.log_evaluation(record, {"accuracy": 0.5}, tmp_path / "plots")
    assert "test metrics not logged to MLflow" in caplog.text
