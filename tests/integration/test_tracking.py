"""MLflow tracking against a real (SQLite) store."""

from pathlib import Path

import pytest

from churn import tracking
from churn.artifacts import RunRecord

pytestmark = pytest.mark.integration


def test_evaluation_of_a_model_whose_run_is_gone_warns_and_continues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record = RunRecord(
        tracking_uri=f"sqlite:///{tmp_path / 'empty.db'}",
        experiment="churn",
        run_id="0" * 32,
        model_uri="models:/m-0",
        registered_model="churn-classifier",
        version="1",
    )
    (tmp_path / "plots").mkdir()
    tracking.log_evaluation(record, {"roc_auc": 0.84}, tmp_path / "plots")
    assert "test metrics not logged to MLflow" in caplog.text


def test_signature_is_derived_from_the_contract() -> None:
    from churn import contract

    signature = tracking.signature()
    assert signature.inputs.input_names() == contract.feature_names()
    types = {spec.name: spec.type.name for spec in signature.inputs.inputs}
    assert types["tenure"] == "double"
    assert types["Contract"] == "string"
