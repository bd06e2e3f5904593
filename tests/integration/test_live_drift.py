"""Live drift metrics from a real service under uvicorn, fed real and shifted records.

The window is half the test split (in whole blocks), the change the domain's
own scenario (`Domain.scenarios.shift`); the unit tests cover the window and
the monitor in detail.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from churn.core.artifacts import CARD_FILE, DRIFT_PROFILE_FILE
from churn.core.domain import Domain
from churn.core.params import Params
from churn.serving.drift_monitor import BLOCKS
from churn.serving.records import ApiRecord, to_api_records
from tests.support.models import TrainedModel
from tests.support.servers import Server

pytestmark = pytest.mark.integration
SINGLES = 100  # records sent one by one on /predict; the rest in batches


def send(client: httpx.Client, records: list[ApiRecord], *, singles: int) -> None:
    """The first ``singles`` one by one on /predict, the rest in batches of 300."""
    for record in records[:singles]:
        assert client.post("/predict", json=record).status_code == 200
    rest = records[singles:]
    for start in range(0, len(rest), 300):
        response = client.post("/predict/batch", json={"records": rest[start : start + 300]})
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


def test_real_records_do_not_drift_and_the_domains_shift_does(
    serve: Callable[..., Server], trained_model: TrainedModel, params: Params, domain: Domain
) -> None:
    if domain.scenarios is None:
        pytest.skip("the domain has no scenarios (a realistic shift to detect)")
    contract, test_split = domain.contract, trained_model.test
    size = len(test_split) // 2 // BLOCKS * BLOCKS  # whole blocks: the window holds exactly size
    settings = {
        "CHURN_DRIFT_WINDOW": str(size),
        "CHURN_DRIFT_MIN_SAMPLES": str(size // 2),
        "CHURN_DRIFT_INTERVAL_S": "0.001",  # every scrape recomputes
    }
    server = serve(trained_model.directory, settings)
    threshold = params.drift.psi_threshold
    with server.client() as client:
        before = drift_metrics(client)
        assert math.isnan(before["churn_drift_detected"])  # no verdict yet
        assert before["churn_drift_window_samples"] == 0
        assert before["psi"] == {}

        send(client, to_api_records(test_split.head(size), contract), singles=SINGLES)
        real = drift_metrics(client)
        assert real["churn_drift_window_samples"] == size
        assert real["churn_drift_detected"] == 0
        assert set(real["psi"]) == set(contract.feature_names)
        assert max(real["psi"].values()) < threshold

        shifted = domain.scenarios.shift(test_split.tail(size), np.random.default_rng(0), 1.0)
        send(client, to_api_records(shifted, contract), singles=SINGLES)
        moved = drift_metrics(client)
    # The window slid: it holds the shifted records only.
    assert moved["churn_drift_window_samples"] == size
    assert moved["churn_drift_detected"] == 1
    drifted = {name for name, psi in moved["psi"].items() if psi >= threshold}
    assert drifted and drifted <= set(domain.scenarios.shifted_features)
    assert "WARNING churn.serving.drift_monitor: live drift: DRIFT" in server.log()


def test_a_model_without_a_drift_profile_is_served_without_drift_metrics(
    serve: Callable[..., Server], trained_model: TrainedModel, domain: Domain, tmp_path: Path
) -> None:
    """A model trained before drift profiles: the service starts, and says drift is off."""
    model_dir = Path(shutil.copytree(trained_model.directory, tmp_path / "model"))
    (model_dir / DRIFT_PROFILE_FILE).unlink()
    card = json.loads((model_dir / CARD_FILE).read_text())
    del card["drift_profile_sha256"]
    (model_dir / CARD_FILE).write_text(json.dumps(card))
    server = serve(model_dir)
    records = to_api_records(trained_model.test, domain.contract)
    with server.client() as client:
        send(client, records, singles=0)
        metrics = drift_metrics(client)
    assert math.isnan(metrics["churn_drift_detected"])
    assert metrics["churn_drift_window_samples"] == 0
    assert metrics["psi"] == {}
    assert "INFO churn.serving.drift_monitor: live drift metrics off" in server.log()
