"""The prediction log under a real `churn serve` on 127.0.0.1: files, feedback, crashes, S3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from churn.data import features, label
from churn.evaluate import compute_metrics
from churn.predlog import (
    FEEDBACK,
    OPEN,
    PREDICTIONS,
    join,
    log_files,
    read_feedback,
    read_lines,
    read_predictions,
)
from churn.serving.schemas import EXAMPLE
from tests.integration.conftest import (
    CHURN,
    S3Server,
    Server,
    TrainedModel,
    api_customers,
    stop_server,
)
from tests.integration.test_openapi_fuzz import CHECKS as FUZZ_CHECKS
from tests.integration.test_openapi_fuzz import SCHEMATHESIS

pytestmark = pytest.mark.integration
FAST = {"CHURN_PREDICTION_LOG_FLUSH_S": "0.1"}


def _env(directory: Path, **settings: str) -> dict[str, str]:
    env = {"CHURN_PREDICTION_LOG_DIR": str(directory), **FAST}
    env.update({f"CHURN_PREDICTION_LOG_{name.upper()}": value for name, value in settings.items()})
    return env


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _metric(server: Server, line_start: str) -> float:
    with server.client() as client:
        text = client.get("/metrics").text
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)
    ]
    assert values, f"no {line_start} in /metrics"
    return values[0]


def test_predictions_and_feedback_are_logged_and_join(
    serve: Callable[..., Server], trained_model: TrainedModel, tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    server = serve(trained_model.directory, _env(log_dir))
    second = {**EXAMPLE, "customer_id": "0002-BBBBB", "tenure": 40}
    with server.client() as client:
        one = client.post("/predict", json=EXAMPLE, headers={"X-Request-ID": "single-1"}).json()
        batch = client.post(
            "/predict/batch",
            json={"customers": [EXAMPLE, second]},
            headers={"X-Request-ID": "batch-1"},
        ).json()
        accepted = [
            client.post("/feedback", json={"request_id": "single-1", "churned": True}),
            client.post(
                "/feedback",
                json={"request_id": "batch-1", "customer_id": "0002-BBBBB", "churned": False},
            ),
        ]
    assert [r.status_code for r in accepted] == [202, 202]
    assert accepted[0].json()["status"] == "accepted"
    _wait_for(
        lambda: _metric(server, 'churn_feedback_received_total{churned="true"}') == 1, "count"
    )
    stop_server(server)  # SIGTERM: the lifespan writes what is buffered and closes the files

    assert not list(log_dir.glob(f"*{OPEN}")), "every file is closed and complete"
    predictions = read_predictions(log_dir)
    assert [(p.request_id, p.customer_id) for p in predictions] == [
        ("single-1", EXAMPLE["customer_id"]),
        ("batch-1", EXAMPLE["customer_id"]),
        ("batch-1", "0002-BBBBB"),
    ]
    first = predictions[0]
    assert first.churn_probability == one["churn_probability"]
    assert first.churn == one["churn"]
    assert (first.model_version, first.model_sha256, first.threshold) == (
        one["model_version"],
        one["model_sha256"],
        one["threshold"],
    )
    assert first.features == {k: v for k, v in EXAMPLE.items() if k != "customer_id"}
    assert [p.churn_probability for p in predictions[1:]] == [
        p["churn_probability"] for p in batch["predictions"]
    ]
    assert predictions[2].features["tenure"] == 40

    result = join(predictions, read_feedback(log_dir))
    assert [
        (x.prediction.request_id, x.prediction.customer_id, x.churned) for x in result.labelled
    ] == [
        ("single-1", EXAMPLE["customer_id"], True),
        ("batch-1", "0002-BBBBB", False),
    ]


FEEDBACK_PROBLEMS: dict[str, tuple[dict[str, Any], str, str]] = {
    "no id": ({"churned": True}, "body", "request_id or customer_id"),
    "not a bool": ({"request_id": "r1", "churned": "yes"}, "churned", "valid boolean"),
    "no time zone": (
        {"request_id": "r1", "churned": True, "observed_at": "2026-01-01T00:00:00"},
        "observed_at",
        "timezone",
    ),
    "future": (
        {"request_id": "r1", "churned": True, "observed_at": "2999-01-01T00:00:00Z"},
        "observed_at",
        "future",
    ),
    "unknown field": ({"request_id": "r1", "churned": True, "score": 1}, "score", "Extra inputs"),
    "bad customer id": ({"customer_id": "x", "churned": True}, "customer_id", "pattern"),
    "bad request id": ({"request_id": "a b", "churned": True}, "request_id", "pattern"),
}


def test_bad_feedback_gets_a_422_naming_the_field(
    serve: Callable[..., Server], trained_model: TrainedModel, tmp_path: Path
) -> None:
    server = serve(trained_model.directory, _env(tmp_path / "log"))
    with server.client() as client:
        for case, (body, field, phrase) in FEEDBACK_PROBLEMS.items():
            response = client.post("/feedback", json=body)
            assert response.status_code == 422, (case, response.text)
            problems = response.json()["detail"]
            assert any(p["field"] == field and phrase in p["message"] for p in problems), (
                case,
                problems,
            )
        good = client.post(
            "/feedback",
            json={
                "customer_id": "0001-AAAAA",
                "churned": False,
                "observed_at": "2026-01-01T00:00:00+01:00",
            },
        )
    assert good.status_code == 202
    assert good.json()["observed_at"] == "2025-12-31T23:00:00Z"


def test_feedback_route_exists_only_with_the_log(server: Server) -> None:
    with server.client() as client:
        response = client.post("/feedback", json={"request_id": "r1", "churned": True})
        paths = client.get("/openapi.json").json()["paths"]
    assert response.status_code == 404
    assert "/feedback" not in paths


def test_feedback_fuzzed_against_its_schema(
    serve: Callable[..., Server], trained_model: TrainedModel, tmp_path: Path
) -> None:
    server = serve(trained_model.directory, _env(tmp_path / "log"))
    result = subprocess.run(
        [
            SCHEMATHESIS, "run", f"{server.url}/openapi.json",
            "--include-path", "/feedback",
            "--checks", FUZZ_CHECKS,
            "--max-examples", "50",
            "--seed", "1",
            "--request-timeout", "5",
            "--no-color",
            "--report-dir", str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Tested: 1" in result.stdout


def test_files_rotate_by_size_and_every_record_is_kept(
    serve: Callable[..., Server], trained_model: TrainedModel, tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    server = serve(trained_model.directory, _env(log_dir, rotate_bytes="4096", gzip="true"))
    customers = api_customers(trained_model.test)[:400]
    with server.client() as client:
        for start in range(0, len(customers), 20):
            response = client.post(
                "/predict/batch", json={"customers": customers[start : start + 20]}
            )
            assert response.status_code == 200
            time.sleep(0.02)  # several flushes, so several gzip members and files
    _wait_for(lambda: len(log_files(log_dir, PREDICTIONS, include_open=False)) >= 3, "rotation")
    stop_server(server)

    files = log_files(log_dir, PREDICTIONS)
    assert all(f.name.endswith(".jsonl.gz") for f in files)
    assert all(read_lines(f).clean for f in files)
    assert [p.customer_id for p in read_predictions(log_dir)] == [
        c["customer_id"] for c in customers
    ]


def test_a_full_buffer_drops_and_counts_instead_of_waiting(
    serve: Callable[..., Server], trained_model: TrainedModel, tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    server = serve(trained_model.directory, _env(log_dir, buffer="10", batch="10"))
    with server.client() as client:
        big = client.post("/predict/batch", json={"customers": [EXAMPLE] * 25})
        small = client.post("/predict", json=EXAMPLE, headers={"X-Request-ID": "kept"})
    assert (big.status_code, small.status_code) == (200, 200)  # answered either way
    dropped = 'churn_prediction_log_dropped_total{reason="buffer_full",stream="predictions"}'
    assert _metric(server, dropped) == 25
    _wait_for(
        lambda: _metric(server, 'churn_prediction_log_records_total{stream="predictions"}') == 1,
        "the kept record",
    )
    stop_server(server)
    assert [p.request_id for p in read_predictions(log_dir)] == ["kept"]


def test_sigkill_under_traffic_loses_at_most_the_unwritten_records(
    serve: Callable[..., Server], trained_model: TrainedModel, tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    batch = 50
    # Only the size trigger: the time trigger (30 s) never fires during the test.
    server = serve(trained_model.directory, _env(log_dir, batch=str(batch), flush_s="30"))
    answered: list[str] = []
    stop = threading.Event()

    def traffic() -> None:
        with server.client() as client:
            for number in range(100_000):
                request_id = f"k{number:06d}"
                try:
                    response = client.post(
                        "/predict", json=EXAMPLE, headers={"X-Request-ID": request_id}
                    )
                except httpx.TransportError:
                    return
                if response.status_code == 200:
                    answered.append(request_id)
                if stop.is_set():
                    return

    sender = threading.Thread(target=traffic)
    sender.start()
    _wait_for(lambda: len(answered) >= 500, "traffic", timeout=60)
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
    assert logged in (answered[: len(logged)], [*answered, f"k{len(answered):06d}"])
    lost = len(answered) - len(logged)
    # What can be lost: the records waiting (fewer than one batch) plus a
    # batch taken from the buffer and not yet handed to the kernel.
    assert lost <= 2 * batch, f"{lost} of {len(answered)} answered predictions lost"

    # The next start closes the dead process's file and keeps its records.
    restarted = serve(trained_model.directory, _env(log_dir))
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
    serve: Callable[..., Server], trained_model: TrainedModel, s3_server: S3Server, tmp_path: Path
) -> None:
    import boto3

    bucket = s3_server.create_bucket("prediction-log")
    spool = tmp_path / "spool"
    env = {
        **s3_server.env,
        "AWS_ENDPOINT_URL": s3_server.endpoint_url,
        **_env(spool, s3_uri=f"s3://{bucket}/churn/prod", rotate_s="1"),
    }
    server = serve(trained_model.directory, env)
    s3 = boto3.client("s3", endpoint_url=s3_server.endpoint_url, **_credentials(s3_server))

    def keys() -> list[str]:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix="churn/prod/")
        return [item["Key"] for item in listed.get("Contents", [])]

    with server.client() as client:
        for number in range(5):
            response = client.post("/predict", json=EXAMPLE, headers={"X-Request-ID": f"s{number}"})
            assert response.status_code == 200
        feedback = client.post("/feedback", json={"request_id": "s0", "churned": True})
        assert feedback.status_code == 202
        # A file is rotated after 1 s and shipped while the server runs.
        _wait_for(lambda: any("/predictions/" in key for key in keys()), "a shipped file", 15)
        assert (
            client.post("/predict", json=EXAMPLE, headers={"X-Request-ID": "last"}).status_code
            == 200
        )
    stop_server(server)  # ships the rest

    assert not log_files(spool, PREDICTIONS) and not log_files(spool, FEEDBACK), "spool emptied"
    downloaded = tmp_path / "downloaded"
    downloaded.mkdir()
    for key in keys():
        assert key.startswith(
            ("churn/prod/predictions/predictions-", "churn/prod/feedback/feedback-")
        )
        s3.download_file(bucket, key, str(downloaded / key.rsplit("/", 1)[1]))
    ids = [p.request_id for p in read_predictions(downloaded)]
    assert ids == ["s0", "s1", "s2", "s3", "s4", "last"]
    assert [f.request_id for f in read_feedback(downloaded)] == ["s0"]


def _credentials(s3_server: S3Server) -> dict[str, str]:
    env = s3_server.env
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


def test_churn_performance_on_real_outcomes_and_on_reversed_ones(
    serve: Callable[..., Server], trained_model: TrainedModel, tmp_path: Path
) -> None:
    test = trained_model.test
    customers = api_customers(test)
    outcomes = [bool(y) for y in label(test)]
    baseline = compute_metrics(
        label(test), trained_model.pipeline.predict_proba(features(test))[:, 1], threshold=0.5
    )
    metrics = tmp_path / "metrics.json"
    metrics.write_text(json.dumps(baseline))

    def run(
        log_dir: Path, reverse: bool
    ) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
        server = serve(trained_model.directory, _env(log_dir))
        with server.client() as client:
            for start in range(0, len(customers), 500):
                chunk = customers[start : start + 500]
                assert client.post("/predict/batch", json={"customers": chunk}).status_code == 200
            for customer, churned in zip(customers, outcomes, strict=True):
                body = {"customer_id": customer["customer_id"], "churned": churned != reverse}
                assert client.post("/feedback", json=body).status_code == 202
        stop_server(server)
        out = tmp_path / f"{log_dir.name}.json"
        result = subprocess.run(
            [
                CHURN, "performance", "--log-dir", str(log_dir),
                "--card", str(trained_model.directory / "model_card.json"),
                "--metrics", str(metrics), "--json", str(out),
            ],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        return result, json.loads(out.read_text())

    same, figures = run(tmp_path / "same", reverse=False)
    assert same.returncode == 0, same.stdout + same.stderr
    assert figures["verdict"] == "ok"
    newest = figures["windows"][-1]
    assert newest["labelled"] == len(customers) == 1409
    assert newest["roc_auc"] == pytest.approx(baseline["roc_auc"], abs=1e-3)
    assert newest["precision"] == pytest.approx(baseline["precision"], abs=1e-3)
    assert newest["recall"] == pytest.approx(baseline["recall"], abs=1e-3)

    reversed_, figures = run(tmp_path / "reversed", reverse=True)
    assert reversed_.returncode == 1, reversed_.stdout + reversed_.stderr
    assert "DECAYED: roc_auc" in reversed_.stdout
    assert figures["windows"][-1]["roc_auc"] == pytest.approx(1 - baseline["roc_auc"], abs=1e-3)
