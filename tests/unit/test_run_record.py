"""The MLflow run record: kept out of `models/`, believed only for its own model,
and never holding credentials."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

import pytest

from churn.core.artifacts import RunRecord, without_credentials
from tests.support.cards import stand_in_card

if TYPE_CHECKING:
    from pathlib import Path

CARD = stand_in_card()


def _record(uri: str = "sqlite:///mlflow.db", model_sha256: str = CARD.sha256) -> RunRecord:
    return RunRecord(uri, "experiment", "r" * 32, "models:/m-1", "registered", "3", model_sha256)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("https://user:secret@mlflow.example:8443/prefix", "https://mlflow.example:8443/prefix"),
        ("http://token@127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("databricks", "databricks"),
    ],
)
def test_a_tracking_uri_loses_its_credentials(uri: str, expected: str) -> None:
    assert without_credentials(uri) == expected
    assert _record(uri).tracking_uri == expected


def test_the_written_record_holds_no_credentials(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    _record("https://user:secret@mlflow.example").write(path)
    assert "secret" not in path.read_text()
    assert RunRecord.read(path).tracking_uri == "https://mlflow.example"


def test_a_record_is_believed_only_for_its_own_model(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    assert RunRecord.read_for(path, CARD) is None  # no record: a model from dvc pull
    _record().write(path)
    assert RunRecord.read_for(path, CARD) == _record()
    other = replace(CARD, sha256="c" * 64)
    assert RunRecord.read_for(path, other) is None  # a stale record of another model
