"""Tracking settings, lineage tags and failure reasons, without a tracking store."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import requests

from churn.core.contract import Contract
from churn.core.errors import TrackingError
from churn.registry import tracking
from tests.support.git import git


def test_fallback_setting_is_read_from_the_environment_and_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CHURN_TRACKING_FALLBACK", raising=False)
    assert tracking.load_settings().tracking_fallback == "none"
    monkeypatch.setenv("CHURN_TRACKING_FALLBACK", "local")
    assert tracking.load_settings().tracking_fallback == "local"
    monkeypatch.setenv("CHURN_TRACKING_FALLBACK", "sometimes")
    with pytest.raises(TrackingError, match="CHURN_TRACKING_FALLBACK: Input should be 'none'"):
        tracking.load_settings()


def _wrapped(cause: BaseException) -> Exception:
    """MLflow's REST client raises its own exception while handling the transport's."""
    exc = RuntimeError("API request to http://127.0.0.1:9/api failed")
    exc.__context__ = cause
    return exc


def test_an_unreachable_server_is_told_apart_from_a_server_that_answered() -> None:
    refused = tracking.unreachable(_wrapped(requests.exceptions.ConnectionError()))
    assert refused == "unreachable"
    timeout = tracking.unreachable(_wrapped(requests.exceptions.ReadTimeout()))
    assert timeout == "no answer (timed out)"
    answered = RuntimeError("INVALID_PARAMETER_VALUE: bad\nmore detail")
    assert tracking.unreachable(answered) is None
    assert tracking.failure_reason(answered) == "INVALID_PARAMETER_VALUE: bad"


def test_connect_check_bounds_restore_the_users_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "9")
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    with tracking.bounded_requests():
        assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "1"
        assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "5"
    assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "9"
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ


def test_lineage_names_the_commit_the_lock_file_and_the_data(tmp_path: Path) -> None:
    data, lock = tmp_path / "train.csv", tmp_path / "dvc.lock"
    data.write_text("a,b\n1,2\n")
    lock.write_text("schema: '2.0'\n")
    git(tmp_path, "init", "--quiet")
    git(tmp_path, "add", "--all")
    git(tmp_path, "commit", "--quiet", "--message", "data")
    tags = tracking.lineage(lock, data, cwd=tmp_path)
    assert tags == {
        "git_commit": git(tmp_path, "rev-parse", "HEAD"),
        "git_dirty": "false",
        "dvc_lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest(),
        # DVC 3 records a file's plain MD5 in dvc.lock and keys its cache by it.
        "train_data_md5": hashlib.md5(data.read_bytes(), usedforsecurity=False).hexdigest(),
    }
    data.write_text("a,b\n1,3\n")
    assert tracking.lineage(lock, data, cwd=tmp_path)["git_dirty"] == "true"


def test_lineage_outside_git_keeps_the_data_hash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))  # no repo above
    data = tmp_path / "train.csv"
    data.write_text("a\n1\n")
    tags = tracking.lineage(tmp_path / "no.lock", data, cwd=tmp_path)
    assert set(tags) == {"train_data_md5"}
    assert "not a git repository" in caplog.text


def test_signature_is_derived_from_the_contract(contract: Contract) -> None:
    signature = tracking.signature(contract)
    assert signature.inputs.input_names() == list(contract.feature_names)
    types = {spec.name: spec.type.name for spec in signature.inputs.inputs}
    assert {name: types[name] for name in contract.numeric_names} == dict.fromkeys(
        contract.numeric_names, "double"
    )
    assert {name: types[name] for name in contract.categorical_names} == dict.fromkeys(
        contract.categorical_names, "string"
    )
    assert signature.outputs is not None
    [output] = signature.outputs.inputs
    assert output.shape == (-1, 2)  # P(negative), P(positive)
