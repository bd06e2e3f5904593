"""Feedback integrity (issue 13): outcomes cannot be rewritten, lost behind a 202, or 500.

Against a real `churn serve` on 127.0.0.1, on a small real model; records,
ids and outcomes come from the domain's data and contract.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from churn.core.contract import ascii_pattern
from churn.core.data import clean, label
from churn.core.domain import Domain
from churn.core.params import Params
from churn.monitoring.predlog import join, read_feedback, read_predictions
from churn.pipeline.evaluate import compute_metrics
from churn.serving.records import to_api_records
from churn.serving.schemas import Schemas
from tests.support.servers import CHURN, Server, log_env, start_server, stop_server, wait_for

pytestmark = pytest.mark.security

FLIPPED_REPLAYS = 800
RECORDS = 1200  # more than the replays, and enough for a verdict (min_labelled lowered to it)
ARABIC_INDIC, FULL_WIDTH = 0x0660, 0xFF10


def _feedback(server: Server, body: dict[str, Any]) -> int:
    with server.client() as client:
        return client.post("/feedback", json=body).status_code


def test_a_date_before_the_first_utc_time_is_a_422_not_a_500(
    small_model_dir: Path, api: Schemas, tmp_path: Path
) -> None:
    server = start_server(small_model_dir, log_env(tmp_path / "log"))
    try:
        base = {api.id_field: api.example[api.id_field], "outcome": True}
        for observed_at in ("0001-01-01T00:00:00+23:59", "0001-01-01T00:00:00+00:01"):
            with server.client() as client:
                response = client.post("/feedback", json={**base, "observed_at": observed_at})
            assert response.status_code == 422, response.text
            assert response.json()["detail"][0]["field"] == "observed_at"
        assert _feedback(server, {**base, "observed_at": "0001-01-02T00:00:00+23:59"}) == 202
    finally:
        stop_server(server)


def test_feedback_that_cannot_be_written_is_a_503_not_a_202(
    small_model_dir: Path, api: Schemas, tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    server = start_server(small_model_dir, log_env(log_dir))
    try:
        shutil.rmtree(log_dir)  # the disk went away before the first outcome
        body = {api.id_field: api.example[api.id_field], "outcome": True}
        with server.client() as client:
            response = client.post("/feedback", json=body)
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == "1"
        assert "not stored" in response.json()["detail"]
        lost = 'churn_prediction_log_dropped_total{reason="write_failed",stream="feedback"}'
        assert server.metric(lost) == 1
        with server.client() as client:  # not counted as received either
            assert (
                'churn_feedback_received_total{outcome="true"} 1' not in client.get("/metrics").text
            )
        log_dir.mkdir()  # back: the next outcome is stored, and its 202 means it
        assert _feedback(server, body) == 202
        wait_for(lambda: len(read_feedback(log_dir)) == 1, "the stored outcome", timeout=5)
    finally:
        stop_server(server)


def test_ids_with_non_ascii_digits_are_refused(
    small_model_dir: Path, api: Schemas, tmp_path: Path
) -> None:
    real = str(api.example[api.id_field])
    if not any(char.isdigit() for char in real):
        pytest.skip("the contract's example id has no digit to swap")
    server = start_server(small_model_dir, log_env(tmp_path / "log"))
    try:
        with server.client() as client:
            for base in (ARABIC_INDIC, FULL_WIDTH):
                fake = "".join(chr(base + int(c)) if c in "0123456789" else c for c in real)
                assert fake != real
                record = {**api.example, api.id_field: fake}
                assert client.post("/predict", json=record).status_code == 422
                body = {api.id_field: fake, "outcome": True}
                assert client.post("/feedback", json=body).status_code == 422
            assert client.post("/predict", json=api.example).status_code == 200
    finally:
        stop_server(server)


def test_the_contract_id_pattern_is_ascii_only() -> None:
    assert ascii_pattern(r"^\d{4}-[\dA-Z]+\w$") == r"^[0-9]{4}-[0-9A-Z]+[A-Za-z0-9_]$"
    assert ascii_pattern(r"^\\d$") == r"^\\d$"  # an escaped backslash, then a letter


def test_flipped_replays_are_corrections_and_do_not_change_the_verdict(  # noqa: PLR0917
    small_model_dir: Path,
    raw_real: pd.DataFrame,
    domain: Domain,
    api: Schemas,
    params: Params,
    tmp_path: Path,
) -> None:
    """The attack of issue 13: the real outcomes, then 800 replays saying the opposite."""
    contract = api.contract
    frame = clean(raw_real, domain).drop_duplicates(contract.id.name).head(RECORDS)
    records = to_api_records(frame, contract)
    outcomes = [bool(y) for y in label(frame, contract)]
    log_dir = tmp_path / "log"
    server = start_server(small_model_dir, log_env(log_dir))
    try:
        scores: list[float] = []
        limit = 500
        with server.client() as client:
            for start in range(0, len(records), limit):
                chunk = records[start : start + limit]
                response = client.post("/predict/batch", json={"records": chunk})
                assert response.status_code == 200, response.text
                scores += [p["probability"] for p in response.json()["predictions"]]
                threshold = response.json()["threshold"]
            for record, outcome in zip(records, outcomes, strict=True):
                body = {api.id_field: record[api.id_field], "outcome": outcome}
                assert client.post("/feedback", json=body).status_code == 202
            for record, outcome in zip(records[:FLIPPED_REPLAYS], outcomes, strict=False):
                body = {api.id_field: record[api.id_field], "outcome": not outcome}
                assert client.post("/feedback", json=body).status_code == 202
    finally:
        stop_server(server)

    # The log keeps every report: nothing is overwritten.
    feedback = read_feedback(log_dir)
    assert len(feedback) == len(records) + FLIPPED_REPLAYS
    joined = join(read_predictions(log_dir), feedback)
    assert [item.outcome for item in joined.labelled] == outcomes  # the first report counts
    assert (joined.corrections, joined.superseded) == (FLIPPED_REPLAYS, FLIPPED_REPLAYS)

    # What `churn performance` reads: the same verdict as without the replays.
    baseline = compute_metrics(label(frame, contract), np.asarray(scores), threshold=threshold)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(baseline))
    monitoring = params.monitoring.model_copy(update={"min_labelled": len(records)})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(
        yaml.safe_dump(params.model_copy(update={"monitoring": monitoring}).model_dump(mode="json"))
    )
    out = tmp_path / "performance.json"
    result = subprocess.run(
        [
            CHURN, "performance", "--log-dir", str(log_dir),
            "--card", str(small_model_dir / "model_card.json"),
            "--metrics", str(metrics), "--params", str(params_file), "--json", str(out),
        ],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text())
    assert report["verdict"] == "ok"
    assert report["corrections"] == FLIPPED_REPLAYS
    assert report["windows"][-1]["labelled"] == len(records)
    assert report["windows"][-1]["roc_auc"] == pytest.approx(baseline["roc_auc"], abs=1e-3)
    assert f"corrections {FLIPPED_REPLAYS:,}" in result.stdout
