"""Live drift metrics from a real service under uvicorn, fed real and shifted customers."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.drift import Shift, price_rise
from churn import contract
from churn.artifacts import CARD_FILE, DRIFT_PROFILE_FILE
from churn.data import features
from tests.integration.conftest import Server, TrainedModel

pytestmark = pytest.mark.integration

CUSTOMERS = 1000
# Every customer month-to-month, every charge 15% higher (contract rules kept).
PRICE_RISE = Shift("all month-to-month, +15%", move_share=1.0, rise=(0.15, 0.15))
DRIFT_SETTINGS = {
    "CHURN_DRIFT_WINDOW": str(CUSTOMERS),
    "CHURN_DRIFT_MIN_SAMPLES": "500",
    "CHURN_DRIFT_INTERVAL_S": "0.001",  # every scrape recomputes
}


def requests(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(features(frame).to_json(orient="records"))
    out = []
    for row in rows:
        request = {contract.api_name(k): v for k, v in row.items()}
        request["tenure"] = int(request["tenure"])
        out.append(request)
    return out


def send(client: httpx.Client, customers: list[dict[str, Any]], *, singles: int) -> None:
    """The first ``singles`` one by one on /predict, the rest in batches of 300."""
    for customer in customers[:singles]:
        assert client.post("/predict", json=customer).status_code == 200
    rest = customers[singles:]
    for start in range(0, len(rest), 300):
        response = client.post("/predict/batch", json={"customers": rest[start : start + 300]})
        assert response.status_code == 200, response.text


def drift_metrics(client: httpx.Client) -> dict[str, Any]:
    """The drift samples of /metrics: verdict, window size, PSI by feature."""
    response = client.get("/metrics")
    assert response.status_code == 200
    found: dict[str, Any] = {"psi": {}}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if sample.name == "churn_feature_drift":
                found["psi"][sample.labels["feature"]] = sample.value
            elif sample.name in {"churn_drift_detected", "churn_drift_window_samples"}:
                found[sample.name] = sample.value
    return found


def test_real_customers_do_not_drift_and_a_price_rise_does(
    serve: Callable[..., Server], trained_model: TrainedModel, params: Any
) -> None:
    test_split = trained_model.test
    assert len(test_split) >= CUSTOMERS
    server = serve(trained_model.directory, DRIFT_SETTINGS)
    threshold = params.drift.psi_threshold
    with server.client() as client:
        before = drift_metrics(client)
        assert math.isnan(before["churn_drift_detected"])  # no verdict yet
        assert before["churn_drift_window_samples"] == 0
        assert before["psi"] == {}

        send(client, requests(test_split.head(CUSTOMERS)), singles=100)
        real = drift_metrics(client)
        assert real["churn_drift_window_samples"] == CUSTOMERS
        assert real["churn_drift_detected"] == 0
        assert set(real["psi"]) == set(contract.feature_names())
        assert max(real["psi"].values()) < threshold

        shifted = price_rise(test_split.tail(CUSTOMERS), PRICE_RISE, np.random.default_rng(0))
        assert (shifted["Contract"] == "Month-to-month").all()
        send(client, requests(shifted), singles=100)
        moved = drift_metrics(client)
    # The window slid: it holds the shifted customers only.
    assert moved["churn_drift_window_samples"] == CUSTOMERS
    assert moved["churn_drift_detected"] == 1
    assert moved["psi"]["MonthlyCharges"] >= threshold
    assert moved["psi"]["Contract"] >= threshold
    assert "WARNING churn.serving.drift_monitor: live drift: DRIFT" in server.log()


def test_a_model_without_a_drift_profile_is_served_without_drift_metrics(
    serve: Callable[..., Server], trained_model: TrainedModel, tmp_path: Path
) -> None:
    """A model trained before drift profiles: the service starts, and says drift is off."""
    model_dir = Path(shutil.copytree(trained_model.directory, tmp_path / "model"))
    (model_dir / DRIFT_PROFILE_FILE).unlink()
    card = json.loads((model_dir / CARD_FILE).read_text())
    del card["drift_profile_sha256"]
    (model_dir / CARD_FILE).write_text(json.dumps(card))
    server = serve(model_dir)
    with server.client() as client:
        send(client, requests(trained_model.test.head(600)), singles=0)
        metrics = drift_metrics(client)
    assert math.isnan(metrics["churn_drift_detected"])
    assert metrics["churn_drift_window_samples"] == 0
    assert metrics["psi"] == {}
    assert "INFO churn.serving.drift_monitor: live drift metrics off" in server.log()
