"""The retraining trigger on real logged traffic: `churn monitor` and `churn ab-report`.

A real `churn serve` writes its prediction log; outcomes arrive on
POST /feedback; `churn monitor` then decides whether retraining is due.
Unshifted traffic with the true outcomes must not trigger it; the domain's
strong shift (``domain.scenarios.shift`` at strength 1.0) must.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.core.artifacts import CARD_FILE, ModelCard
from churn.core.contract import api_name
from churn.core.data import features, label
from churn.core.domain import Domain, Scenarios
from churn.core.params import Params
from churn.pipeline.evaluate import compute_metrics
from churn.pipeline.prepare import run as prepare
from churn.serving.records import ApiRecord, to_api_records
from churn.serving.settings import ServingSettings
from tests.support.cli import churn
from tests.support.models import TrainedModel
from tests.support.params import write_params
from tests.support.servers import S3Server, Server, log_env, stop_server

pytestmark = pytest.mark.integration


def scenarios_of(domain: Domain) -> Scenarios:
    assert domain.scenarios is not None, "the domain room defines no scenarios (a shift)"
    return domain.scenarios


def shifted(frame: pd.DataFrame, domain: Domain, seed: int = 0) -> pd.DataFrame:
    """``frame`` after the domain's strong shift (the one drift checks must catch)."""
    return scenarios_of(domain).shift(frame, np.random.default_rng(seed), 1.0)


@pytest.fixture
def files(
    trained_model: TrainedModel,
    raw_real: pd.DataFrame,
    params: Params,
    domain: Domain,
    tmp_path: Path,
) -> dict[str, Path]:
    """The training split and the model's test metrics, as the pipeline writes them."""
    train_split, _ = prepare(raw_real, params.prepare, domain)
    reference = tmp_path / "train.csv"
    train_split.to_csv(reference, index=False)
    contract, test = domain.contract, trained_model.test
    card = ModelCard.read(trained_model.directory / CARD_FILE)
    score = trained_model.pipeline.predict_proba(features(test, contract))[:, 1]
    baseline = tmp_path / "metrics.json"
    baseline.write_text(json.dumps(compute_metrics(label(test, contract), score, card.threshold)))
    # A small table's test split may hold fewer outcomes than a verdict needs: the
    # monitor then judges it with that many (the rule's other numbers unchanged).
    enough = min(params.monitoring.min_labelled, len(test))
    monitoring = params.monitoring.model_copy(update={"min_labelled": enough})
    judged = write_params(
        params.model_copy(update={"monitoring": monitoring}), tmp_path / "params.yaml"
    )
    return {"reference": reference, "metrics": baseline, "params": judged}


def batches(records: list[ApiRecord]) -> Iterator[list[ApiRecord]]:
    """``records`` in batches the service accepts: within its batch size and its
    body limit, measured on the largest record's JSON (with room to spare)."""
    settings = ServingSettings()
    largest = max(len(json.dumps(record).encode()) for record in records) + 2
    size = max(1, min(settings.max_batch_size, settings.max_body_bytes // (2 * largest)))
    for start in range(0, len(records), size):
        yield records[start : start + size]


def log_traffic(
    serve: Callable[..., Server],
    model_dir: Path,
    log_dir: Path,
    frame: pd.DataFrame,
    *,
    domain: Domain,
    env: dict[str, str] | None = None,
) -> None:
    """Score every record through the service, then report each one's true outcome."""
    contract = domain.contract
    server = serve(model_dir, {**log_env(log_dir), **(env or {})})
    records = to_api_records(frame, contract)
    id_field = api_name(contract.id.name)
    with server.client() as client:
        for batch in batches(records):
            response = client.post("/predict/batch", json={"records": batch})
            assert response.status_code == 200, response.text
        for record, outcome in zip(records, label(frame, contract), strict=True):
            body = {id_field: record[id_field], "outcome": bool(outcome)}
            response = client.post("/feedback", json=body)
            assert response.status_code == 202, response.text
    stop_server(server)  # SIGTERM: the log is flushed and its files closed


def monitor(
    log_dir: Path | str,
    model: TrainedModel,
    files: dict[str, Path],
    out: Path,
    env: dict[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    done = churn(
        "monitor", "--log-dir", str(log_dir),
        "--reference", str(files["reference"]),
        "--card", str(model.directory / CARD_FILE),
        "--metrics", str(files["metrics"]), "--json", str(out),
        "--params", str(files["params"]),
        env=env, timeout=120,
    )  # fmt: skip
    return done, json.loads(out.read_text()) if out.exists() else {}


def test_unshifted_traffic_does_not_trigger_retraining(
    serve: Callable[..., Server],
    trained_model: TrainedModel,
    files: dict[str, Path],
    domain: Domain,
    tmp_path: Path,
) -> None:
    log_traffic(serve, trained_model.directory, tmp_path / "log", trained_model.test, domain=domain)
    done, result = monitor(tmp_path / "log", trained_model, files, tmp_path / "monitor.json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "RETRAIN: no" in done.stdout
    assert result["retrain"] is False
    assert result["window_predictions"] == len(trained_model.test)
    assert result["drift"]["drift"] is False
    assert result["performance"]["verdict"] == "ok"
    assert result["performance"]["windows"][-1]["labelled"] == len(trained_model.test)


def test_the_domains_shift_triggers_retraining_for_drift(
    serve: Callable[..., Server],
    trained_model: TrainedModel,
    files: dict[str, Path],
    domain: Domain,
    tmp_path: Path,
) -> None:
    traffic = shifted(trained_model.test, domain)
    log_traffic(serve, trained_model.directory, tmp_path / "log", traffic, domain=domain)
    done, result = monitor(tmp_path / "log", trained_model, files, tmp_path / "monitor.json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert result["retrain"] is True
    drifted = {f["feature"] for f in result["drift"]["features"] if f["drifted"]}
    assert drifted and drifted <= set(scenarios_of(domain).shifted_features), drifted
    assert any(reason.startswith("data drift in") for reason in result["reasons"])


def test_ab_report_says_no_decision_without_a_challenger(
    serve: Callable[..., Server], trained_model: TrainedModel, domain: Domain, tmp_path: Path
) -> None:
    traffic = trained_model.test.head(300)
    log_traffic(serve, trained_model.directory, tmp_path / "log", traffic, domain=domain)
    done = churn("ab-report", "--log-dir", str(tmp_path / "log"), timeout=60)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"^champion\s+{len(traffic)}\s", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^challenger\s+0\s", done.stdout, re.MULTILINE), done.stdout
    assert "VERDICT: no decision yet" in done.stdout


def test_monitor_refuses_a_missing_log(
    trained_model: TrainedModel, files: dict[str, Path], tmp_path: Path
) -> None:
    done, _ = monitor(tmp_path / "nothing", trained_model, files, tmp_path / "monitor.json")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "nothing" in done.stderr


def test_monitor_reads_the_log_shipped_to_s3(
    *,
    serve: Callable[..., Server],
    trained_model: TrainedModel,
    files: dict[str, Path],
    domain: Domain,
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    bucket = s3_server.create_bucket("monitor-log")
    s3 = {**s3_server.env, "AWS_ENDPOINT_URL": s3_server.endpoint_url}
    shipping = {**s3, "CHURN_PREDICTION_LOG_S3_URI": f"s3://{bucket}/prod"}
    traffic = shifted(trained_model.test, domain)
    log_traffic(
        serve, trained_model.directory, tmp_path / "spool", traffic, domain=domain, env=shipping
    )
    done, result = monitor(f"s3://{bucket}/prod", trained_model, files, tmp_path / "m.json", s3)
    assert done.returncode == 1, done.stdout + done.stderr
    assert result["window_predictions"] == len(traffic)
    assert result["performance"]["windows"][-1]["labelled"] == len(traffic)

    missing, _ = monitor(f"s3://{bucket}/other", trained_model, files, tmp_path / "x.json", s3)
    assert missing.returncode == 2
    assert f"s3://{bucket}/other: no prediction log files" in missing.stderr
