"""The prediction service: its routes in process, and what only a real `churn serve` shows.

Routes and validation run in this process through `httpx.ASGITransport`
(`tests.support.asgi.AppClient`): the app is the one `churn serve` runs,
with the real model, minus the socket. Start-up refusals, a real port and
bodies streamed without a length run `churn serve` under uvicorn.

Every record, field name, level, range and size comes from the contract,
the model and the settings: nothing here knows the example's domain.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi import FastAPI

from churn.core.artifacts import CARD_FILE, ONNX_FILE, ModelCard
from churn.core.contract import Contract, api_name
from churn.core.data import features
from churn.core.domain import Domain
from churn.core.params import Params
from churn.pipeline.model import ONNX_TOLERANCE
from churn.serving.app import create_app
from churn.serving.loader import LoadedModel
from churn.serving.records import to_api_records
from churn.serving.schemas import Schemas
from churn.serving.settings import ServingSettings
from tests.support.asgi import AppClient
from tests.support.columns import converse, forward_break, lone_rules, with_rule_kind
from tests.support.models import ESTIMATORS, TrainedModel, copy_model, train_model
from tests.support.servers import Server, serve_and_fail

pytestmark = pytest.mark.integration
API_KEY = "k" * 24


@pytest.fixture
def app(model: LoadedModel, contract: Contract) -> Callable[..., FastAPI]:
    """The service with these settings (``ServingSettings`` fields), serving `model`."""

    def make(**settings: Any) -> FastAPI:
        return create_app(ServingSettings(**settings), model, contract=contract)

    return make


def levels_phrase(levels: tuple[str, ...]) -> str:
    """How pydantic lists allowed values: "'a', 'b' or 'c'"."""
    quoted = [repr(level) for level in levels]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


# -- in process ----------------------------------------------------------------------


def test_health_ready_and_model(
    app: Callable[..., FastAPI], trained_model: TrainedModel, contract: Contract
) -> None:
    card = ModelCard.read(trained_model.directory / CARD_FILE)
    with AppClient(app()) as client:
        assert client.get("/health").json()["status"] == "ok"
        assert client.get("/ready").json() == {"status": "ready", "model_version": "unregistered"}
        info = client.get("/model").json()
        document = client.get("/openapi.json").json()
    assert info["sha256"] == card.onnx_sha256
    assert info["pipeline_sha256"] == card.sha256
    assert info["training_metrics"] == card.metrics
    properties = info["input_schema"]["properties"]
    for column in contract.categorical:
        assert value_schema(properties[api_name(column.name)], column.nullable)["enum"] == list(
            column.levels
        )
    for number in contract.numeric:
        field = value_schema(properties[api_name(number.name)], number.nullable)
        assert (field["minimum"], field["maximum"]) == (number.min_value, number.max_value)
    assert document["info"]["title"] == contract.title


def value_schema(field: dict[str, Any], nullable: bool) -> dict[str, Any]:
    """A field's schema for its values; a nullable field must offer null beside them."""
    if not nullable:
        assert "anyOf" not in field
        return field
    alternatives = field["anyOf"]
    assert {"type": "null"} in alternatives
    (values,) = [alternative for alternative in alternatives if alternative != {"type": "null"}]
    return dict(values)


def test_predict_one_record(
    app: Callable[..., FastAPI], trained_model: TrainedModel, contract: Contract, api: Schemas
) -> None:
    with AppClient(app()) as client:
        response = client.post("/predict", json=api.example, headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200
    body = response.json()
    # The server makes the id; the caller's is kept beside it, never used as the id.
    assert body["request_id"] == response.headers["x-request-id"] != "abc-123"
    assert response.headers["x-client-request-id"] == "abc-123"
    assert 0 <= body["probability"] <= 1
    assert body["decision"] == (body["probability"] >= body["threshold"])
    example = pd.DataFrame([contract.example])[list(contract.feature_names)]
    expected = trained_model.pipeline.predict_proba(example)[0, 1]
    assert body["probability"] == pytest.approx(expected, abs=1e-5)


def test_answers_match_the_pipeline_on_the_whole_test_split(
    app: Callable[..., FastAPI], trained_model: TrainedModel, contract: Contract
) -> None:
    requests = to_api_records(trained_model.test, contract)
    limit = ServingSettings().max_batch_size
    scores: list[float] = []
    with AppClient(app()) as client:
        for start in range(0, len(requests), limit):
            response = client.post(
                "/predict/batch", json={"records": requests[start : start + limit]}
            )
            assert response.status_code == 200, response.text
            scores += [p["probability"] for p in response.json()["predictions"]]
    expected = trained_model.pipeline.predict_proba(features(trained_model.test, contract))[:, 1]
    assert len(scores) == len(expected) == len(trained_model.test)
    assert np.max(np.abs(np.array(scores) - expected)) < 1e-5


BAD_REQUESTS = (
    "wrong type",
    "number as string",
    "unknown level",
    "above the range",
    "below the range",
    "missing field",
    "extra field",
    "null",
    "cross-field rule",
    "bad record id",
    "malformed JSON",
    "not an object",
)


def bad_requests(contract: Contract, api: Schemas) -> dict[str, tuple[Any, str, str]]:
    """Case -> (body, the field the 422 names, a phrase of its message), for the cases
    the contract allows (no float feature: no "number as string", and so on)."""
    example = api.example
    cases: dict[str, tuple[Any, str, str]] = {
        "malformed JSON": ("{" + json.dumps(api.id_field) + ": 1,", "body", "malformed JSON"),
        "not an object": ("[1, 2]", "body", "should be an object"),
        "extra field": ({**example, "not_a_contract_field": 1}, "not_a_contract_field", "Extra"),
    }
    if not re.fullmatch(contract.id.pattern, wrong := "not an id!"):
        cases["bad record id"] = ({**example, api.id_field: wrong}, api.id_field, "pattern")
    if (rule := _broken_rule(contract, example)) is not None:
        cases["cross-field rule"] = rule
    if contract.numeric:
        number = contract.numeric[0]
        field, cast = api_name(number.name), int if number.kind == "int" else float
        kind = "integer" if number.kind == "int" else "number"
        cases["wrong type"] = ({**example, field: "twelve"}, field, f"valid {kind}")
        high, low = cast(number.max_value + 1), cast(number.min_value - 1)
        cases["above the range"] = ({**example, field: high}, field, "less than or equal")
        cases["below the range"] = ({**example, field: low}, field, "greater than or equal")
    if floats := [c for c in contract.numeric if c.kind == "float"]:
        field = api_name(floats[0].name)
        cases["number as string"] = ({**example, field: str(example[field])}, field, "number")
    if contract.categorical:
        category = contract.categorical[0]
        field, levels = api_name(category.name), levels_phrase(category.levels)
        cases["unknown level"] = ({**example, field: "not a level"}, field, levels)
        missing = {k: v for k, v in example.items() if k != field}
        cases["missing field"] = (missing, field, "Field required")
    if strict := [c for c in contract.categorical if not c.nullable]:  # null is a 422 here
        field, levels = api_name(strict[0].name), levels_phrase(strict[0].levels)
        cases["null"] = ({**example, field: None}, field, levels)
    return cases


def _broken_rule(contract: Contract, example: dict[str, Any]) -> tuple[Any, str, str] | None:
    """The example with one cross-field rule broken forwards (its condition without its
    level, which breaks either kind of rule), in fields no other rule mentions."""
    rules = lone_rules(contract)
    if not rules:
        return None
    rule = rules[0]
    fields = {api_name(name): value for name, value in forward_break(contract, rule).items()}
    link = "when" if rule.one_way else "exactly when"
    when, then = api_name(rule.when), api_name(rule.then[0])
    message = f"{then} must be {rule.then_value!r} {link} {when} is {rule.when_value!r}"
    return {**example, **fields}, "body", message


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_bad_input_gets_a_422_naming_the_field(
    app: Callable[..., FastAPI], contract: Contract, api: Schemas, case: str
) -> None:
    cases = bad_requests(contract, api)
    if case not in cases:
        pytest.skip(f"the contract has nothing to break as {case!r}")
    body, field, phrase = cases[case]
    content = body if isinstance(body, str) else json.dumps(body)
    with AppClient(app()) as client:
        response = client.post(
            "/predict", content=content, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422, response.text
    problems = response.json()["detail"]
    assert any(p["field"] == field and phrase in p["message"] for p in problems), problems


@pytest.mark.parametrize("one_way", [True, False], ids=["one-way", "both-ways"])
def test_a_rules_level_alone_is_answered_only_under_a_one_way_rule(
    model: LoadedModel, contract: Contract, api: Schemas, one_way: bool
) -> None:
    rules = lone_rules(contract)
    if not rules:
        pytest.skip("no cross-field rule shares no column with another")
    variant = with_rule_kind(contract, one_way=one_way)
    link = "when" if one_way else "exactly when"
    with AppClient(create_app(ServingSettings(), model, contract=variant)) as client:
        for rule in rules:
            when, then = api_name(rule.when), api_name(rule.then[0])
            message = f"{then} must be {rule.then_value!r} {link} {when} is {rule.when_value!r}"
            alone = {api_name(k): v for k, v in converse(contract, rule).items()}
            response = client.post("/predict", json={**api.example, **alone})
            if one_way:
                assert response.status_code == 200, response.text
            else:
                assert response.status_code == 422, response.text
                assert message in response.text
            broken = {api_name(k): v for k, v in forward_break(contract, rule).items()}
            response = client.post("/predict", json={**api.example, **broken})
            assert response.status_code == 422, response.text
            assert message in response.text


def test_batch_limits(app: Callable[..., FastAPI], contract: Contract, api: Schemas) -> None:
    limit = 10
    example = api.example
    category = api_name(contract.categorical[0].name)
    with AppClient(app(max_batch_size=limit)) as client:
        empty = client.post("/predict/batch", json={"records": []})
        assert empty.status_code == 422
        assert "at least 1 item" in empty.text
        too_many = client.post("/predict/batch", json={"records": [example] * (limit + 1)})
        assert too_many.status_code == 422
        assert too_many.json()["detail"] == [
            {
                "field": "records",
                "message": f"at most {limit} per batch, got {limit + 1}",
                "type": "too_long",
            }
        ]
        one_bad = client.post(
            "/predict/batch", json={"records": [example, {**example, category: "not a level"}]}
        )
        assert one_bad.status_code == 422
        assert one_bad.json()["detail"][0]["field"] == f"records.1.{category}"
        fine = client.post("/predict/batch", json={"records": [example] * limit})
        assert fine.status_code == 200
        assert len(fine.json()["predictions"]) == limit


def test_oversized_body_gets_413(app: Callable[..., FastAPI], api: Schemas) -> None:
    limit = ServingSettings().max_body_bytes
    one = len(json.dumps(api.example)) + 2  # and ", "
    huge = json.dumps({"records": [api.example] * (limit // one + 1)})
    assert len(huge) > limit
    with AppClient(app()) as client:
        response = client.post(
            "/predict/batch", content=huge, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert response.json()["detail"] == f"request body larger than {limit} bytes"
        assert client.post("/predict", json=api.example).status_code == 200


def test_predict_wants_json(app: Callable[..., FastAPI], api: Schemas) -> None:
    with AppClient(app()) as client:
        for path, body in (
            ("/predict", api.example),
            ("/predict/batch", {"records": [api.example]}),
        ):
            response = client.post(
                path, content=json.dumps(body), headers={"Content-Type": "text/plain"}
            )
            assert response.status_code == 415, path


def test_metrics_count_requests_errors_and_scores(
    app: Callable[..., FastAPI], contract: Contract, api: Schemas, model: LoadedModel
) -> None:
    number = contract.numeric[0]
    below = {**api.example, api_name(number.name): number.min_value - 1}
    with AppClient(app()) as client:
        client.post("/predict", json=api.example)
        client.post("/predict", json=below)
        client.post("/predict/batch", json={"records": [api.example] * 3})
        text = client.get("/metrics").text
        scored = client.metric("churn_prediction_score_count")
    assert 'churn_http_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
    assert 'churn_http_requests_total{method="POST",route="/predict",status="422"} 1.0' in text
    assert 'churn_http_request_duration_seconds_bucket{le="0.005",route="/predict"}' in text
    assert scored == 4  # a batch counts each record
    assert f'churn_model_info{{estimator="{model.card.estimator}"' in text


def test_api_key_protects_prediction_routes_only(app: Callable[..., FastAPI], api: Schemas) -> None:
    with AppClient(app(api_key=API_KEY)) as client:
        assert client.post("/predict", json=api.example).status_code == 401
        wrong = client.post("/predict", json=api.example, headers={"X-API-Key": "w" * 24})
        assert wrong.status_code == 401
        right = client.post("/predict", json=api.example, headers={"X-API-Key": API_KEY})
        assert right.status_code == 200
        assert client.get("/ready").status_code == 200
        assert client.get("/metrics").status_code == 200


# -- under uvicorn -------------------------------------------------------------------


def test_a_real_port_answers_as_the_app_in_process(
    server: Server, app: Callable[..., FastAPI], api: Schemas
) -> None:
    with server.client() as client:
        assert client.get("/ready").status_code == 200
        remote = client.post("/predict", json=api.example).json()
    with AppClient(app()) as client:
        local = client.post("/predict", json=api.example).json()
    # The same answer but for the request id, which the server makes for each request.
    assert remote.pop("request_id") != local.pop("request_id")
    assert remote == local


def test_every_estimator_params_offers_is_served_by_churn_serve(
    serve: Callable[..., Server],
    raw_real: pd.DataFrame,
    *,
    params: Params,
    domain: Domain,
    contract: Contract,
    tmp_path: Path,
) -> None:
    """The service knows nothing of the estimator: any model `train` writes (its ONNX
    with the two stacked inputs) is loaded, self-checked and answers like its pipeline."""
    for estimator in ESTIMATORS:
        if estimator == params.train.estimator:
            continue  # the default model is served by every other test here
        train_params = params.train.model_copy(update={"estimator": estimator, "cv_folds": 2})
        trained = train_model(raw_real, params, domain, tmp_path / estimator, train_params)
        requests = to_api_records(trained.test, contract)
        limit = ServingSettings().max_batch_size
        scores: list[float] = []
        with serve(trained.directory).client() as client:
            info = client.get("/model").json()
            for start in range(0, len(requests), limit):
                batch = {"records": requests[start : start + limit]}
                response = client.post("/predict/batch", json=batch)
                assert response.status_code == 200, response.text
                scores += [p["probability"] for p in response.json()["predictions"]]
        assert info["estimator"] == estimator
        expected = trained.pipeline.predict_proba(features(trained.test, contract))[:, 1]
        assert len(scores) == len(expected)
        assert np.max(np.abs(np.array(scores) - expected)) <= ONNX_TOLERANCE


def test_oversized_chunked_body_gets_413(server: Server, api: Schemas) -> None:
    """A body without Content-Length is counted as it arrives."""
    limit = ServingSettings().max_body_bytes
    chunk = json.dumps(api.example).encode()
    count = limit // (len(chunk) + 1) + 1

    def body() -> Iterator[bytes]:
        yield b'{"records": ['
        for _ in range(count):
            yield chunk + b","
        yield chunk + b"]}"

    with server.client() as client:
        response = client.post(
            "/predict/batch", content=body(), headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert f"larger than {limit} bytes" in response.json()["detail"]


def test_oversized_chunked_body_to_predict_gets_413_quietly(server: Server, api: Schemas) -> None:
    kib = 1024
    count = math.ceil(ServingSettings().max_body_bytes / kib) + 1

    def body() -> Iterator[bytes]:
        yield b"{" + json.dumps(api.id_field).encode() + b': "'
        for _ in range(count):
            yield b"x" * kib
        yield b'"}'

    with server.client() as client:
        response = client.post(
            "/predict", content=body(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert client.get("/health").status_code == 200
    assert "Traceback" not in server.log()


def test_missing_model_stops_startup(tmp_path: Path) -> None:
    result = serve_and_fail(tmp_path / "nowhere")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: {tmp_path / 'nowhere' / CARD_FILE}: not found"


def test_corrupt_model_stops_startup(tmp_path: Path, trained_model: TrainedModel) -> None:
    model_dir = copy_model(trained_model.directory, tmp_path / "model")
    with (model_dir / ONNX_FILE).open("ab") as handle:
        handle.write(b"junk")
    result = serve_and_fail(model_dir)
    assert result.returncode == 2
    assert "does not match the card" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_model_that_answers_differently_stops_startup(
    tmp_path: Path, trained_model: TrainedModel
) -> None:
    model_dir = copy_model(trained_model.directory, tmp_path / "model")
    card = json.loads((model_dir / CARD_FILE).read_text())
    card["reference"]["scores"][0] += 0.1
    (model_dir / CARD_FILE).write_text(json.dumps(card))
    result = serve_and_fail(model_dir)
    assert result.returncode == 2
    assert "self-check failed" in result.stderr


def test_weak_api_key_is_refused(trained_model: TrainedModel) -> None:
    result = serve_and_fail(trained_model.directory, {"CHURN_API_KEY": "short"})
    assert result.returncode == 2
    assert "at least 16 characters" in result.stderr


def test_the_service_does_not_import_the_training_stack(trained_model: TrainedModel) -> None:
    """The container has only the serving runtime: serving must not need the rest."""
    model_dir = str(trained_model.directory)
    code = (
        "import sys, churn.cli.app; from churn.core.domain import load_domain; "
        "from churn.serving import app, loader, settings; "
        "contract = load_domain().contract; "
        f"model = loader.load(settings.ServingSettings(model_dir={model_dir!r}), contract); "
        "app.create_app(settings.ServingSettings(), model, contract=contract); "
        "heavy = ('pandas', 'sklearn', 'mlflow', 'great_expectations', 'dvc', 'skops'); "
        "print([m for m in heavy if m in sys.modules])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
