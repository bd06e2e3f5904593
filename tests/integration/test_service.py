"""The prediction service under a real uvicorn process on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn import contract
from churn.artifacts import CARD_FILE, ONNX_FILE
from churn.data import features
from churn.serving.schemas import EXAMPLE
from tests.integration.conftest import CHURN, Server, TrainedModel

pytestmark = pytest.mark.integration


def _records(frame: Any) -> list[dict[str, Any]]:
    """Rows of a cleaned frame as API requests (snake_case, native Python values)."""
    x = features(frame)
    rows: list[dict[str, Any]] = json.loads(x.to_json(orient="records"))
    out = []
    for row in rows:
        request = {contract.api_name(k): v for k, v in row.items()}
        request["tenure"] = int(request["tenure"])
        out.append(request)
    return out


def test_health_ready_and_model(server: Server, trained_model: TrainedModel) -> None:
    card = json.loads((trained_model.directory / CARD_FILE).read_text())
    with server.client() as client:
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/ready").json() == {"status": "ready", "model_version": "unregistered"}
        info = client.get("/model").json()
    assert info["sha256"] == card["onnx_sha256"]
    assert info["pipeline_sha256"] == card["sha256"]
    assert info["training_metrics"]["cv_roc_auc"] > 0.84
    contract_levels = info["input_schema"]["properties"]["contract"]["enum"]
    assert contract_levels == ["Month-to-month", "One year", "Two year"]


def test_predict_one_customer(server: Server, trained_model: TrainedModel) -> None:
    with server.client() as client:
        response = client.post("/predict", json=EXAMPLE, headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    body = response.json()
    assert body["request_id"] == "abc-123"
    assert 0 <= body["churn_probability"] <= 1
    assert body["churn"] == (body["churn_probability"] >= body["threshold"])
    example = pd.DataFrame([contract.EXAMPLE])[contract.feature_names()]
    expected = trained_model.pipeline.predict_proba(example)[0, 1]
    assert body["churn_probability"] == pytest.approx(expected, abs=1e-5)


def test_answers_match_the_pipeline_on_the_whole_test_split(
    server: Server, trained_model: TrainedModel
) -> None:
    requests = _records(trained_model.test)
    scores: list[float] = []
    with server.client() as client:
        for start in range(0, len(requests), 500):
            response = client.post(
                "/predict/batch", json={"customers": requests[start : start + 500]}
            )
            assert response.status_code == 200, response.text
            scores += [p["churn_probability"] for p in response.json()["predictions"]]
    expected = trained_model.pipeline.predict_proba(features(trained_model.test))[:, 1]
    assert len(scores) == len(expected) == 1409
    assert np.max(np.abs(np.array(scores) - expected)) < 1e-5


LEVELS = "'Month-to-month', 'One year' or 'Two year'"
NO_GENDER = {k: v for k, v in EXAMPLE.items() if k != "gender"}
PHONE_RULE = "multiple_lines must be 'No phone service'"

# case: (body, the field the message names, a phrase of the message)
BAD_REQUESTS: dict[str, tuple[dict[str, Any] | str, str, str]] = {
    "wrong type": ({**EXAMPLE, "tenure": "twelve"}, "tenure", "valid integer"),
    "number as string": ({**EXAMPLE, "monthly_charges": "9.5"}, "monthly_charges", "valid number"),
    "unknown level": ({**EXAMPLE, "contract": "Weekly"}, "contract", LEVELS),
    "out of range": ({**EXAMPLE, "tenure": 500}, "tenure", "less than or equal to 72"),
    "negative": ({**EXAMPLE, "monthly_charges": -1.0}, "monthly_charges", "greater than or equal"),
    "missing field": (NO_GENDER, "gender", "Field required"),
    "extra field": ({**EXAMPLE, "region": "CA"}, "region", "Extra inputs are not permitted"),
    "null": ({**EXAMPLE, "partner": None}, "partner", "'No' or 'Yes'"),
    "cross-field rule": ({**EXAMPLE, "multiple_lines": "No"}, "body", PHONE_RULE),
    "bad customer id": ({**EXAMPLE, "customer_id": "x"}, "customer_id", "should match pattern"),
    "malformed JSON": ('{"tenure": 1,', "body", "malformed JSON"),
    "not an object": ("[1, 2]", "body", "should be an object"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_input_gets_a_422_naming_the_field(server: Server, case: str) -> None:
    body, field, phrase = BAD_REQUESTS[case]
    content = body if isinstance(body, str) else json.dumps(body)
    with server.client() as client:
        response = client.post(
            "/predict", content=content, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert any(p["field"] == field and phrase in p["message"] for p in problems), problems


def test_batch_limits(server: Server) -> None:
    with server.client() as client:
        empty = client.post("/predict/batch", json={"customers": []})
        assert empty.status_code == 422
        assert "at least 1 item" in empty.text
        too_many = client.post("/predict/batch", json={"customers": [EXAMPLE] * 1001})
        assert too_many.status_code == 422
        assert too_many.json()["detail"] == [
            {
                "field": "customers",
                "message": "at most 1000 per batch, got 1001",
                "type": "too_long",
            }
        ]
        one_bad = client.post(
            "/predict/batch", json={"customers": [EXAMPLE, {**EXAMPLE, "gender": "X"}]}
        )
        assert one_bad.status_code == 422
        assert one_bad.json()["detail"][0]["field"] == "customers.1.gender"


def test_oversized_body_gets_413(server: Server) -> None:
    huge = json.dumps({"customers": [EXAMPLE] * 3000})
    assert len(huge) > 1 << 20
    with server.client() as client:
        response = client.post(
            "/predict/batch", content=huge, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413


def test_oversized_chunked_body_gets_413(server: Server) -> None:
    """A body without Content-Length is counted as it arrives."""
    chunk = json.dumps(EXAMPLE).encode()

    def body() -> Iterator[bytes]:
        yield b'{"customers": ['
        for _ in range(4000):
            yield chunk + b","
        yield chunk + b"]}"

    with server.client() as client:
        response = client.post(
            "/predict/batch", content=body(), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert "larger than 1048576 bytes" in response.json()["detail"]


def test_oversized_chunked_body_to_predict_gets_413_quietly(server: Server) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"customer_id": "'
        for _ in range(2000):
            yield b"x" * 1024
        yield b'"}'

    with server.client() as client:
        response = client.post(
            "/predict", content=body(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert client.get("/health").status_code == 200
    assert "Traceback" not in server.log()


def test_predict_wants_json(server: Server) -> None:
    with server.client() as client:
        response = client.post(
            "/predict", content=json.dumps(EXAMPLE), headers={"Content-Type": "text/plain"}
        )
    assert response.status_code == 415


def test_metrics_count_requests_errors_and_scores(server: Server) -> None:
    with server.client() as client:
        client.post("/predict", json=EXAMPLE)
        client.post("/predict", json={**EXAMPLE, "tenure": -1})
        text = client.get("/metrics").text
    assert 'churn_http_requests_total{method="POST",route="/predict",status="200"}' in text
    assert 'churn_http_requests_total{method="POST",route="/predict",status="422"}' in text
    assert 'churn_http_request_duration_seconds_bucket{le="0.005",route="/predict"}' in text
    assert "churn_prediction_score_count" in text
    assert 'churn_model_info{estimator="logistic_regression"' in text


def test_api_key_protects_prediction_routes_only(
    serve: Callable[..., Server], trained_model: TrainedModel
) -> None:
    key = "k" * 24
    server = serve(trained_model.directory, {"CHURN_API_KEY": key})
    with server.client() as client:
        assert client.post("/predict", json=EXAMPLE).status_code == 401
        wrong = client.post("/predict", json=EXAMPLE, headers={"X-API-Key": "w" * 24})
        assert wrong.status_code == 401
        right = client.post("/predict", json=EXAMPLE, headers={"X-API-Key": key})
        assert right.status_code == 200
        assert client.get("/ready").status_code == 200
        assert client.get("/metrics").status_code == 200


def _serve_and_fail(
    model_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHURN, "serve", "--port", "1", "--model-dir", str(model_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **(env or {})},
    )


def _copy_model(source: Path, target: Path) -> Path:
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def test_missing_model_stops_startup(tmp_path: Path) -> None:
    result = _serve_and_fail(tmp_path / "nowhere")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nowhere' / CARD_FILE}: not found"


def test_corrupt_model_stops_startup(tmp_path: Path, trained_model: TrainedModel) -> None:
    model_dir = _copy_model(trained_model.directory, tmp_path / "model")
    with (model_dir / ONNX_FILE).open("ab") as handle:
        handle.write(b"junk")
    result = _serve_and_fail(model_dir)
    assert result.returncode == 2
    assert "does not match the card" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_model_that_answers_differently_stops_startup(
    tmp_path: Path, trained_model: TrainedModel
) -> None:
    model_dir = _copy_model(trained_model.directory, tmp_path / "model")
    card = json.loads((model_dir / CARD_FILE).read_text())
    card["reference"]["scores"][0] += 0.1
    (model_dir / CARD_FILE).write_text(json.dumps(card))
    result = _serve_and_fail(model_dir)
    assert result.returncode == 2
    assert "self-check failed" in result.stderr


def test_weak_api_key_is_refused(trained_model: TrainedModel) -> None:
    result = _serve_and_fail(trained_model.directory, {"CHURN_API_KEY": "short"})
    assert result.returncode == 2
    assert "at least 16 characters" in result.stderr


def test_the_service_does_not_import_the_training_stack(trained_model: TrainedModel) -> None:
    """The container has only the serving runtime: serving must not need the rest."""
    model_dir = str(trained_model.directory)
    code = (
        "import sys, churn.cli; from churn.serving import app, loader, settings; "
        f"model = loader.load(settings.ServingSettings(model_dir={model_dir!r})); "
        "app.create_app(settings.ServingSettings(), model); "
        "heavy = ('pandas', 'sklearn', 'mlflow', 'great_expectations', 'dvc', 'skops'); "
        "print([m for m in heavy if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
