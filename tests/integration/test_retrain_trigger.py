"""The retraining trigger on real logged traffic: `churn monitor` and `churn ab-report`.

A real `churn serve` writes its prediction log; outcomes arrive on
POST /feedback; `churn monitor` then decides whether retraining is due.
Unshifted traffic with the true outcomes must not trigger it; a price rise
that moves customers to month-to-month contracts must.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.data import features, label
from churn.evaluate import compute_metrics
from churn.params import Params
from churn.prepare import run as prepare
from tests.integration.conftest import (
    CHURN,
    S3Server,
    Server,
    TrainedModel,
    api_customers,
    stop_server,
)
from tests.integration.test_prediction_log import _env

pytestmark = pytest.mark.integration
MONTH_TO_MONTH = "Month-to-month"


def price_rise(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """40% of contract customers go month-to-month; month-to-month charges rise 10-20%."""
    rng = np.random.default_rng(seed)
    shifted = frame.copy()
    moves = (shifted["Contract"] != MONTH_TO_MONTH) & (rng.random(len(shifted)) < 0.4)
    shifted.loc[moves, "Contract"] = MONTH_TO_MONTH
    monthly = shifted["Contract"] == MONTH_TO_MONTH
    rise = rng.uniform(1.10, 1.20, len(shifted))
    shifted.loc[monthly, "MonthlyCharges"] = (
        (shifted.loc[monthly, "MonthlyCharges"] * rise[monthly.to_numpy()]).clip(upper=200).round(2)
    )
    return shifted


@pytest.fixture
def files(
    trained_model: TrainedModel, raw_real: pd.DataFrame, params: Params, tmp_path: Path
) -> dict[str, Path]:
    """The training split and the model's test metrics, as the pipeline writes them."""
    train_split, _ = prepare(raw_real, params.prepare)
    reference = tmp_path / "train.csv"
    train_split.to_csv(reference, index=False)
    test = trained_model.test
    metrics = compute_metrics(
        label(test), trained_model.pipeline.predict_proba(features(test))[:, 1], threshold=0.5
    )
    baseline = tmp_path / "metrics.json"
    baseline.write_text(json.dumps(metrics))
    return {"reference": reference, "metrics": baseline}


def log_traffic(
    serve: Callable[..., Server],
    model_dir: Path,
    log_dir: Path,
    customers: pd.DataFrame,
    env: dict[str, str] | None = None,
) -> None:
    """Score every customer through the service, then report each one's true outcome."""
    server = serve(model_dir, {**_env(log_dir), **(env or {})})
    payload = api_customers(customers)
    with server.client() as client:
        for start in range(0, len(payload), 500):
            chunk = payload[start : start + 500]
            assert client.post("/predict/batch", json={"customers": chunk}).status_code == 200
        for customer, churned in zip(payload, label(customers), strict=True):
            body = {"customer_id": customer["customer_id"], "churned": bool(churned)}
            assert client.post("/feedback", json=body).status_code == 202
    stop_server(server)  # SIGTERM: the log is flushed and its files closed


def monitor(
    log_dir: Path | str,
    model: TrainedModel,
    files: dict[str, Path],
    out: Path,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = subprocess.run(
        [
            CHURN, "monitor", "--log-dir", str(log_dir),
            "--reference", str(files["reference"]),
            "--card", str(model.directory / "model_card.json"),
            "--metrics", str(files["metrics"]), "--json", str(out),
        ],
        capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return done, json.loads(out.read_text()) if out.exists() else {}


def test_unshifted_traffic_does_not_trigger_retraining(
    serve: Callable[..., Server],
    trained_model: TrainedModel,
    files: dict[str, Path],
    tmp_path: Path,
) -> None:
    log_traffic(serve, trained_model.directory, tmp_path / "log", trained_model.test)
    done, result = monitor(tmp_path / "log", trained_model, files, tmp_path / "monitor.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RETRAIN: no" in done.stdout
    assert result["retrain"] is False
    assert result["window_predictions"] == len(trained_model.test)
    assert result["drift"]["drift"] is False
    assert result["performance"]["verdict"] == "ok"


def test_a_price_rise_triggers_retraining_for_drift(
    serve: Callable[..., Server],
    trained_model: TrainedModel,
    files: dict[str, Path],
    tmp_path: Path,
) -> None:
    shifted = price_rise(trained_model.test)
    log_traffic(serve, trained_model.directory, tmp_path / "log", shifted)
    done, result = monitor(tmp_path / "log", trained_model, files, tmp_path / "monitor.json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert result["retrain"] is True
    drifted = {f["feature"] for f in result["drift"]["features"] if f["drifted"]}
    assert {"Contract", "MonthlyCharges"} <= drifted, drifted
    assert any(reason.startswith("data drift in") for reason in result["reasons"])


def test_ab_report_says_no_decision_without_a_challenger(
    serve: Callable[..., Server], trained_model: TrainedModel, tmp_path: Path
) -> None:
    log_traffic(serve, trained_model.directory, tmp_path / "log", trained_model.test.head(300))
    done = subprocess.run(
        [CHURN, "ab-report", "--log-dir", str(tmp_path / "log")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "champion          300" in done.stdout
    assert "challenger          0" in done.stdout
    assert "VERDICT: no decision yet" in done.stdout


def test_monitor_refuses_a_missing_log(
    trained_model: TrainedModel, files: dict[str, Path], tmp_path: Path
) -> None:
    done, _ = monitor(tmp_path / "nothing", trained_model, files, tmp_path / "monitor.json")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "nothing" in done.stderr


def test_monitor_reads_the_log_shipped_to_s3(
    serve: Callable[..., Server],
    trained_model: TrainedModel,
    files: dict[str, Path],
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    bucket = s3_server.create_bucket("monitor-log")
    s3 = {**s3_server.env, "AWS_ENDPOINT_URL": s3_server.endpoint_url}
    shipping = {**s3, "CHURN_PREDICTION_LOG_S3_URI": f"s3://{bucket}/prod"}
    shifted = price_rise(trained_model.test)
    log_traffic(serve, trained_model.directory, tmp_path / "spool", shifted, shipping)
    done, result = monitor(f"s3://{bucket}/prod", trained_model, files, tmp_path / "m.json", s3)
    assert done.returncode == 1, done.stdout + done.stderr
    assert result["window_predictions"] == len(shifted)
    assert result["performance"]["windows"][-1]["labelled"] == len(shifted)

    missing, _ = monitor(f"s3://{bucket}/other", trained_model, files, tmp_path / "x.json", s3)
    assert missing.returncode == 2
    assert f"s3://{bucket}/other: no prediction log files" in missing.stderr
