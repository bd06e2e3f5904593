"""The prediction log: files, feedback, rotation, crashes and S3, with the real model.

What the routes write runs in this process (`tests.support.asgi.AppClient`:
leaving it closes the log as a server's shutdown does). What needs a real
process runs `churn serve`: a SIGKILL under traffic, a refused start-up,
shipping to an S3-compatible server, fuzzing over HTTP.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from fastapi import FastAPI

from churn.core.contract import Contract
from churn.core.data import features, label
from churn.core.params import Params
from churn.monitoring.predlog import (
    FEEDBACK,
    OPEN,
    PREDICTIONS,
    join,
    log_files,
    read_feedback,
    read_lines,
    read_predictions,
)
from churn.pipeline.evaluate import compute_metrics
from churn.serving.app import create_app
from churn.serving.loader import LoadedModel
from churn.serving.prediction_log import encode_predictions
from churn.serving.records import ApiRecord, to_api_records
from churn.serving.schemas import Schemas
from churn.serving.settings import ServingSettings
from tests.support.asgi import AppClient
from tests.support.fuzz import fuzz
from tests.support.models import TrainedModel
from tests.support.servers import (
    CHURN,
    S3Server,
    Server,
    log_env,
    stop_server,
    wait_for,
)

pytestmark = pytest.mark.integration
NOT_AN_ID = "not an id!"


@pytest.fixture(scope="module")
def test_records(trained_model: TrainedModel, contract: Contract) -> list[ApiRecord]:
    """The held-out split as API records, with their ids."""
    return to_api_records(trained_model.test, contract)


@pytest.fixture
def logging_app(model: LoadedModel, contract: Contract) -> Callable[..., FastAPI]:
    """The service writing its log to ``directory`` (more settings as ``log_env`` names them)."""

    def make(directory: Path, **settings: str) -> FastAPI:
        env = log_env(directory, **settings)
        values: dict[str, Any] = {k.removeprefix("CHURN_").lower(): v for k, v in env.items()}
        return create_app(ServingSettings(**values), model, contract=contract)

    return make


def test_predictions_and_feedback_are_logged_and_join(
    logging_app: Callable[..., FastAPI], api: Schemas, test_records: list[ApiRecord], tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    first_record, second_record = test_records[:2]
    second_id = second_record[api.id_field]
    with AppClient(logging_app(log_dir)) as client:
        # The ids the server made (a caller's X-Request-ID is never the id).
        one = client.post(
            "/predict", json=first_record, headers={"X-Request-ID": "single-1"}
        ).json()
        batch = client.post(
            "/predict/batch",
            json={"records": [first_record, second_record]},
            headers={"X-Request-ID": "single-1"},
        ).json()
        single_1, batch_1 = one["request_id"], batch["request_id"]
        assert single_1 != batch_1
        accepted = [
            client.post("/feedback", json={"request_id": single_1, "outcome": True}),
            client.post(
                "/feedback",
                json={"request_id": batch_1, api.id_field: second_id, "outcome": False},
            ),
        ]
        assert client.metric('churn_feedback_received_total{outcome="true"}') == 1
        assert client.metric('churn_feedback_received_total{outcome="false"}') == 1
    # Leaving the lifespan wrote what was buffered and closed the files.
    assert [r.status_code for r in accepted] == [202, 202]
    assert accepted[1].json()["status"] == "accepted"
    assert accepted[1].json()[api.id_field] == second_id

    assert not list(log_dir.glob(f"*{OPEN}")), "every file is closed and complete"
    predictions = read_predictions(log_dir)
    assert [(p.request_id, p.id) for p in predictions] == [
        (single_1, first_record[api.id_field]),
        (batch_1, first_record[api.id_field]),
        (batch_1, second_id),
    ]
    first = predictions[0]
    assert first.probability == one["probability"]
    assert first.decision == one["decision"]
    assert (first.model_version, first.model_sha256, first.threshold) == (
        one["model_version"],
        one["model_sha256"],
        one["threshold"],
    )
    assert first.features == {k: v for k, v in first_record.items() if k != api.id_field}
    assert [p.probability for p in predictions[1:]] == [
        p["probability"] for p in batch["predictions"]
    ]
    assert predictions[2].features == {k: v for k, v in second_record.items() if k != api.id_field}

    result = join(predictions, read_feedback(log_dir))
    assert [(x.prediction.request_id, x.prediction.id, x.outcome) for x in result.labelled] == [
        (single_1, first_record[api.id_field], True),
        (batch_1, second_id, False),
    ]


def feedback_problems(api: Schemas) -> dict[str, tuple[dict[str, Any], str, str]]:
    """Case -> (body, the field the 422 names, a phrase of its message)."""
    return {
        "no id": ({"outcome": True}, "body", f"request_id or {api.id_field}"),
        "not a bool": ({"request_id": "r1", "outcome": "yes"}, "outcome", "valid boolean"),
        "no time zone": (
            {"request_id": "r1", "outcome": True, "observed_at": "2026-01-01T00:00:00"},
            "observed_at",
            "timezone",
        ),
        "future": (
            {"request_id": "r1", "outcome": True, "observed_at": "2999-01-01T00:00:00Z"},
            "observed_at",
            "future",
        ),
        "unknown field": ({"request_id": "r1", "outcome": True, "x": 1}, "x", "Extra inputs"),
        "bad record id": ({api.id_field: NOT_AN_ID, "outcome": True}, api.id_field, "pattern"),
        "bad request id": ({"request_id": "a b", "outcome": True}, "request_id", "pattern"),
    }


def test_bad_feedback_gets_a_422_naming_the_field(
    logging_app: Callable[..., FastAPI],
    api: Schemas,
    contract: Contract,
    test_records: list[ApiRecord],
    tmp_path: Path,
) -> None:
    import re

    problems = feedback_problems(api)
    if re.fullmatch(contract.id.pattern, NOT_AN_ID):
        del problems["bad record id"]
    with AppClient(logging_app(tmp_path / "log")) as client:
        for case, (body, field, phrase) in problems.items():
            response = client.post("/feedback", json=body)
            assert response.status_code == 422, (case, response.text)
            found = response.json()["detail"]
            assert any(p["field"] == field and phrase in p["message"] for p in found), (case, found)
        good = client.post(
            "/feedback",
            json={
                api.id_field: test_records[0][api.id_field],
                "outcome": False,
                "observed_at": "2026-01-01T00:00:00+01:00",
            },
        )
    assert good.status_code == 202
    assert good.json()["observed_at"] == "2025-12-31T23:00:00Z"


def test_feedback_route_exists_only_with_the_log(model: LoadedModel, contract: Contract) -> None:
    with AppClient(create_app(ServingSettings(), model, contract=contract)) as client:
        response = client.post("/feedback", json={"request_id": "r1", "outcome": True})
        paths = client.get("/openapi.json").json()["paths"]
    assert response.status_code == 404
    assert "/feedback" not in paths


def test_feedback_fuzzed_against_its_schema(
    serve: Callable[..., Server], trained_model: TrainedModel, tmp_path: Path
) -> None:
    server = serve(trained_model.directory, log_env(tmp_path / "log"))
    result = fuzz(server.url, tmp_path, "--include-path", "/feedback")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Tested: 1" in result.stdout


def test_files_rotate_by_size_and_every_record_is_kept(
    logging_app: Callable[..., FastAPI],
    model: LoadedModel,
    api: Schemas,
    test_records: list[ApiRecord],
    tmp_path: Path,
) -> None:
    per_request, requests = 20, 20
    sent = test_records[: per_request * requests]
    # What one request adds to a file: its records' lines as one gzip member.
    parsed = [api.Record.model_validate(record) for record in sent[:per_request]]
    lines = encode_predictions(
        time.time(), uuid.uuid4().hex, model, parsed, [0.5] * per_request, id_field=api.id_field
    )
    member = len(gzip.compress(lines))
    rotate = max(1024, 2 * member)  # two requests a file (1024: the setting's minimum)
    log_dir = tmp_path / "log"
    app = logging_app(log_dir, rotate_bytes=str(rotate), gzip="true", batch=str(per_request))
    with AppClient(app) as client:
        for start in range(0, len(sent), per_request):
            response = client.post(
                "/predict/batch", json={"records": sent[start : start + per_request]}
            )
            assert response.status_code == 200
            time.sleep(0.02)  # the writer catches up: about one gzip member per request

    files = log_files(log_dir, PREDICTIONS)
    assert len(files) >= 3, [f.stat().st_size for f in files]
    assert all(f.name.endswith(".jsonl.gz") for f in files)
    assert all(read_lines(f).clean for f in files)
    assert all(f.stat().st_size >= rotate for f in files[:-1])  # rotated by size, not closed
    assert [p.id for p in read_predictions(log_dir)] == [r[api.id_field] for r in sent]


def test_a_full_buffer_drops_and_counts_instead_of_waiting(
    logging_app: Callable[..., FastAPI], api: Schemas, tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    capacity = 10
    app = logging_app(log_dir, buffer=str(capacity), batch=str(capacity), flush_s="30")
    with AppClient(app) as client:
        big = client.post("/predict/batch", json={"records": [api.example] * (capacity + 1)})
        small = client.post("/predict", json=api.example)
        assert (big.status_code, small.status_code) == (200, 200)  # answered either way
        dropped = 'churn_prediction_log_dropped_total{reason="buffer_full",stream="predictions"}'
        assert client.metric(dropped) == capacity + 1  # a batch is kept or dropped whole
        waiting = 'churn_prediction_log_buffered_records{stream="predictions"}'
        assert client.metric(waiting) == 1
    assert [p.request_id for p in read_predictions(log_dir)] == [small.json()["request_id"]]


def test_sigkill_under_traffic_loses_at_most_the_unwritten_records(
    serve: Callable[..., Server], trained_model: TrainedModel, api: Schemas, tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    batch = 50
    # Only the size trigger: the time trigger (30 s) never fires during the test.
    server = serve(trained_model.directory, log_env(log_dir, batch=str(batch), flush_s="30"))
    answered: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with server.client() as client:
            for _ in range(100_000):
                try:
                    response = client.post("/predict", json=api.example)
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    answered.append(response.json()["request_id"])
                if stop.is_set():
                    return

    sender = threading.Thread(target=traffic)
    sender.start()
    wait_for(lambda: len(answered) >= 10 * batch, "traffic", timeout=60)
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    stop.set()
    sender.join(timeout=30)

    files = log_files(log_dir, PREDICTIONS)
    assert files, "nothing was written before the crash"
    logged: list[str] = []
    for path in files:
        content = read_lines(path)  # everything up to the last newline must be valid
        logged += [json.loads(line)["request_id"] for line in content.lines]
    # A prediction can be logged and killed before its answer reached the client.
    # (its id, made by the server, is then in the log alone).
    assert logged[: len(answered)] == answered[: len(logged)]
    assert len(logged) <= len(answered) + 1
    lost = len(answered) - len(logged)
    # What can be lost: the records waiting (fewer than one batch) plus a
    # batch taken from the buffer and not yet handed to the kernel.
    assert lost <= 2 * batch, f"{lost} of {len(answered)} answered predictions lost"

    # The next start closes the dead process's file and keeps its records.
    restarted = serve(trained_model.directory, log_env(log_dir))
    assert "closed 1 file(s) a stopped process left open" in restarted.log()
    stop_server(restarted)
    assert not list(log_dir.glob(f"*{OPEN}"))
    assert [p.request_id for p in read_predictions(log_dir)] == logged


def test_an_unwritable_log_directory_stops_startup(
    trained_model: TrainedModel, tmp_path: Path
) -> None:
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")
    result = subprocess.run(
        [CHURN, "serve", "--port", "1", "--model-dir", str(trained_model.directory)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "CHURN_PREDICTION_LOG_DIR": str(not_a_directory / "log")},
    )
    assert result.returncode == 2
    message = f"CHURN_PREDICTION_LOG_DIR={not_a_directory / 'log'}: cannot write there"
    assert result.stderr.strip().splitlines() == [f"error: {message} (Not a directory)"]


def test_complete_files_are_shipped_to_s3(
    serve: Callable[..., Server],
    trained_model: TrainedModel,
    api: Schemas,
    s3_server: S3Server,
    tmp_path: Path,
) -> None:
    bucket = s3_server.create_bucket("prediction-log")
    spool = tmp_path / "spool"
    env = {
        **s3_server.env,
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        **log_env(spool, s3_uri=f"s3://{bucket}/service/prod", rotate_s="1"),
    }
    server = serve(trained_model.directory, env)
    s3 = s3_server.client()

    def keys() -> list[str]:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="service/prod/")
        return [item["Key"] for item in listed.get("Contents", [])]

    with server.client() as client:
        sent = []
        for _ in range(5):
            response = client.post("/predict", json=api.example)
            assert response.status_code == 200
            sent.append(response.json()["request_id"])
        feedback = client.post("/feedback", json={"request_id": sent[0], "outcome": True})
        assert feedback.status_code == 202
        # A file is rotated after 1 s and shipped while the server runs.
        wait_for(lambda: any("/predictions/" in key for key in keys()), "a shipped file", 15)
        last = client.post("/predict", json=api.example)
        assert last.status_code == 200
        sent.append(last.json()["request_id"])
    stop_server(server)  # ships the rest

    assert not log_files(spool, PREDICTIONS) and not log_files(spool, FEEDBACK), "spool emptied"
    downloaded = tmp_path / "downloaded"
    downloaded.mkdir()
    for key in keys():
        assert key.startswith(
            ("service/prod/predictions/predictions-", "service/prod/feedback/feedback-")
        )
        s3.download_file(bucket, key, str(downloaded / key.rsplit("/", 1)[1]))
    ids = [p.request_id for p in read_predictions(downloaded)]
    assert ids == sent
    assert [f.request_id for f in read_feedback(downloaded)] == sent[:1]


def test_churn_performance_on_real_outcomes_and_on_reversed_ones(
    logging_app: Callable[..., FastAPI],
    trained_model: TrainedModel,
    api: Schemas,
    params: Params,
    tmp_path: Path,
) -> None:
    contract = api.contract
    test = trained_model.test
    records = to_api_records(test, contract)
    outcomes = [bool(y) for y in label(test, contract)]
    threshold = params.train.threshold
    scores = trained_model.pipeline.predict_proba(features(test, contract))[:, 1]
    baseline = compute_metrics(label(test, contract), scores, threshold=threshold)
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(baseline))
    # A verdict needs min_labelled outcomes in the newest window: the test split has what it has.
    monitoring = params.monitoring.model_copy(
        update={"min_labelled": min(params.monitoring.min_labelled, len(records))}
    )
    params_file = tmp_path / "params.yaml"
    params_file.write_text(
        yaml.safe_dump(params.model_copy(update={"monitoring": monitoring}).model_dump(mode="json"))
    )
    limit = ServingSettings().max_batch_size

    def run(log_dir: Path, reverse: bool) -> tuple[subprocess.CompletedProcess[str], Any]:
        with AppClient(logging_app(log_dir)) as client:
            for start in range(0, len(records), limit):
                chunk = records[start : start + limit]
                assert client.post("/predict/batch", json={"records": chunk}).status_code == 200
            for record, outcome in zip(records, outcomes, strict=True):
                body = {api.id_field: record[api.id_field], "outcome": outcome != reverse}
                assert client.post("/feedback", json=body).status_code == 202
        out = tmp_path / f"{log_dir.name}.json"
        result = subprocess.run(
            [
                CHURN, "performance", "--log-dir", str(log_dir),
                "--card", str(trained_model.directory / "model_card.json"),
                "--metrics", str(metrics), "--params", str(params_file), "--json", str(out),
            ],
            capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "NO_COLOR": "1", "TERM": "dumb"},
        )  # fmt: skip
        return result, json.loads(out.read_text())

    same, figures = run(tmp_path / "same", reverse=False)
    assert same.returncode == 0, same.stdout + same.stderr
    assert figures["verdict"] == "ok"
    newest = figures["windows"][-1]
    assert newest["labelled"] == len(records) == len(test)
    assert newest["roc_auc"] == pytest.approx(baseline["roc_auc"], abs=1e-3)
    assert newest["precision"] == pytest.approx(baseline["precision"], abs=1e-3)
    assert newest["recall"] == pytest.approx(baseline["recall"], abs=1e-3)

    reversed_, figures = run(tmp_path / "reversed", reverse=True)
    assert reversed_.returncode == 1, reversed_.stdout + reversed_.stderr
    assert "DECAYED: roc_auc" in reversed_.stdout
    assert figures["windows"][-1]["roc_auc"] == pytest.approx(1 - baseline["roc_auc"], abs=1e-3)
