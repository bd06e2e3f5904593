"""Model slots, A/B tests and shadow mode with two real models.

The default model (`trained_model`, the champion) and one trained with the
domain's weaker parameters (`challenger_model`), so every answer can be
traced to the model that gave it by its hash and its score. The routes run
in this process (`tests.support.asgi.AppClient`); switching under
concurrent load and fuzzing run `churn serve`.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from fastapi import FastAPI

from churn.core.artifacts import CARD_FILE, ONNX_FILE, ModelCard
from churn.core.contract import Contract
from churn.core.data import features
from churn.core.domain import Domain
from churn.core.params import Params
from churn.monitoring.abtest import CHALLENGER, CHAMPION, variant_for
from churn.monitoring.predlog import read_predictions
from churn.serving import loader
from churn.serving.app import create_app
from churn.serving.loader import LoadedModel
from churn.serving.records import ApiRecord, to_api_records
from churn.serving.schemas import Schemas
from churn.serving.settings import ServingSettings
from tests.support.asgi import AppClient
from tests.support.fuzz import fuzz
from tests.support.models import TrainedModel, copy_model, train_model
from tests.support.params import overridden
from tests.support.servers import Server, metric_value

pytestmark = pytest.mark.integration
API_KEY = "p" * 24
ADMIN_KEY = "a" * 24
ADMIN = {"CHURN_ADMIN_ENABLED": "true", "CHURN_API_KEY": API_KEY, "CHURN_ADMIN_API_KEY": ADMIN_KEY}
ADMIN_SETTINGS = {"admin_enabled": True, "api_key": API_KEY, "admin_api_key": ADMIN_KEY}
CLIENT_THREADS = 3
PHASE_S = 0.6  # traffic before the load, between the steps and after the rollback
SHARE, SALT = 0.3, "exp-1"


@pytest.fixture(scope="module")
def challenger_model(
    raw_real: pd.DataFrame,
    params: Params,
    domain: Domain,
    tmp_path_factory: pytest.TempPathFactory,
) -> TrainedModel:
    """A second model on the same split, trained with the domain's weaker parameters."""
    weaker = domain.scenarios.weaker_train if domain.scenarios is not None else {}
    if not weaker:
        pytest.skip("the domain's scenarios give no weaker training parameters")
    train_params = overridden(params.train, weaker)
    directory = tmp_path_factory.mktemp("challenger")
    return train_model(raw_real, params, domain, directory, train_params)


@dataclass(frozen=True)
class Pair:
    """The two models (trained, and loaded as the service loads them) and the test records."""

    champion: TrainedModel
    challenger: TrainedModel
    candidate: LoadedModel  # the challenger, loaded
    api: Schemas
    records: list[ApiRecord]  # the test split's, with their ids

    def sha(self, variant: str) -> str:
        model = self.champion if variant == CHAMPION else self.challenger
        return ModelCard.read(model.directory / CARD_FILE).onnx_sha256


@pytest.fixture(scope="module")
def pair(trained_model: TrainedModel, challenger_model: TrainedModel, api: Schemas) -> Pair:
    candidate = loader.load(ServingSettings(model_dir=challenger_model.directory), api.contract)
    records = to_api_records(trained_model.test, api.contract)
    return Pair(trained_model, challenger_model, candidate, api, records)


@pytest.fixture(scope="module")
def champion(trained_model: TrainedModel, contract: Contract) -> LoadedModel:
    return loader.load(ServingSettings(model_dir=trained_model.directory), contract)


@pytest.fixture
def app(champion: LoadedModel, contract: Contract) -> Callable[..., FastAPI]:
    """The service serving the champion, with these settings (and this candidate, if any)."""

    def make(challenger: LoadedModel | None = None, **settings: Any) -> FastAPI:
        # The champion's directory: /admin loads from under its parent (the tests' base).
        settings = {"model_dir": Path(champion.source), **settings}
        return create_app(ServingSettings(**settings), champion, challenger, contract)

    return make


# -- slots -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    started: float
    ended: float
    outcome: int | str  # the status code, or the transport error's name
    sha256: str | None


class Clients:
    """Client threads posting /predict back to back while the block runs; every answer kept."""

    def __init__(self, server: Server, threads: int, body: ApiRecord) -> None:
        self.server = server
        self.body = body
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send) for _ in range(threads)]

    def __enter__(self) -> list[Answer]:
        for thread in self._threads:
            thread.start()
        return self.answers

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _send(self) -> None:
        with self.server.client(headers={"X-API-Key": API_KEY}) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = client.post("/predict", json=self.body)
                except httpx.HTTPError as exc:
                    self.answers.append(Answer(started, time.monotonic(), type(exc).__name__, None))
                    continue
                sha = response.json()["model_sha256"] if response.status_code == 200 else None
                self.answers.append(Answer(started, time.monotonic(), response.status_code, sha))


def test_load_switch_and_rollback_under_load_fail_no_request(
    serve: Callable[..., Server], pair: Pair
) -> None:
    server = serve(pair.champion.directory, ADMIN)
    old, new = pair.sha(CHAMPION), pair.sha(CHALLENGER)
    with (
        Clients(server, CLIENT_THREADS, pair.api.example) as answers,
        server.client(headers={"X-API-Key": ADMIN_KEY}) as admin,
    ):
        time.sleep(PHASE_S)
        loaded = admin.post(
            "/admin/models/standby", json={"model_dir": str(pair.challenger.directory)}
        )
        assert loaded.status_code == 200, loaded.text
        assert (loaded.json()["active"]["sha256"], loaded.json()["standby"]["sha256"]) == (old, new)
        assert loaded.json()["standby_role"] == "candidate"
        time.sleep(PHASE_S)

        switch_sent = time.monotonic()
        switched = admin.post("/admin/models/switch")
        switch_done = time.monotonic()
        assert switched.status_code == 200, switched.text
        assert switched.json()["active"]["sha256"] == new
        assert switched.json()["standby_role"] == "previous"
        assert admin.get("/model").json()["sha256"] == new
        assert admin.get("/ready").status_code == 200
        assert admin.post("/admin/models/switch").status_code == 409  # a retry does not swap back
        time.sleep(PHASE_S)

        rollback_sent = time.monotonic()
        rolled_back = admin.post("/admin/models/rollback")
        rollback_done = time.monotonic()
        assert rolled_back.status_code == 200, rolled_back.text
        assert rolled_back.json()["active"]["sha256"] == old
        assert rolled_back.json()["standby"]["sha256"] == new  # still loaded
        assert admin.get("/model").json()["sha256"] == old
        time.sleep(PHASE_S)
    with server.client() as client:
        value = client.get("/metrics").text

    failed = [a for a in answers if a.outcome != 200]
    assert not failed, failed[:5]
    assert len(answers) > 100
    before = {a.sha256 for a in answers if a.ended < switch_sent}
    between = {a.sha256 for a in answers if switch_done < a.started and a.ended < rollback_sent}
    after = {a.sha256 for a in answers if a.started > rollback_done}
    assert (before, between, after) == ({old}, {new}, {old})
    assert 'churn_model_switches_total{action="switch"} 1.0' in value
    assert 'churn_model_switches_total{action="rollback"} 1.0' in value
    assert f'churn_model_slot_info{{role="active",sha256="{old}"' in value


def test_a_model_that_cannot_load_is_refused_and_the_slots_stay(
    app: Callable[..., FastAPI], trained_model: TrainedModel, api: Schemas, tmp_path: Path
) -> None:
    corrupt = copy_model(trained_model.directory, tmp_path / "corrupt")
    with (corrupt / ONNX_FILE).open("ab") as handle:
        handle.write(b"junk")
    different = copy_model(trained_model.directory, tmp_path / "different")
    card = json.loads((different / CARD_FILE).read_text())
    card["reference"]["scores"][0] += 0.1
    (different / CARD_FILE).write_text(json.dumps(card))

    with AppClient(app(**ADMIN_SETTINGS), headers={"X-API-Key": ADMIN_KEY}) as admin:
        before = admin.get("/admin/models").json()
        for directory, phrase in (
            (tmp_path / "nowhere", f"{CARD_FILE}: not found"),
            (corrupt, "does not match the card"),
            (different, "self-check failed"),
        ):
            response = admin.post("/admin/models/standby", json={"model_dir": str(directory)})
            assert response.status_code == 422, response.text
            (problem,) = response.json()["detail"]
            assert problem["field"] == "model_dir" and phrase in problem["message"], problem
        for body in ({}, {"model_dir": str(corrupt), "model_uri": "models:/m@challenger"}):
            response = admin.post("/admin/models/standby", json=body)
            assert response.status_code == 422
            assert "exactly one" in response.text
        assert admin.post("/admin/models/switch").status_code == 409
        assert admin.post("/admin/models/rollback").status_code == 409
        assert admin.delete("/admin/models/standby").status_code == 409
        assert admin.get("/admin/models").json() == before
        assert admin.post("/predict", json=api.example, headers={"X-API-Key": API_KEY}).is_success
        assert admin.metric('churn_model_loads_total{outcome="failed"}') == 3


def test_admin_needs_its_own_key(app: Callable[..., FastAPI], api: Schemas) -> None:
    with AppClient(app(**ADMIN_SETTINGS)) as client:
        for headers in ({}, {"X-API-Key": API_KEY}):
            assert client.get("/admin/models", headers=headers).status_code == 401
            assert client.post("/admin/models/switch", headers=headers).status_code == 401
        assert client.get("/admin/models", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
        as_admin = client.post("/predict", json=api.example, headers={"X-API-Key": ADMIN_KEY})
        assert as_admin.status_code == 401


def test_admin_is_off_by_default(app: Callable[..., FastAPI]) -> None:
    with AppClient(app()) as client:
        assert client.get("/admin/models").status_code == 404
        assert client.post("/admin/models/switch").status_code == 404
        paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/admin")]


def test_admin_routes_fuzzed_against_their_schema(
    serve: Callable[..., Server], trained_model: TrainedModel, tmp_path: Path
) -> None:
    """No 5xx, whatever is sent; a registry URI fails fast against a closed port."""
    server = serve(
        trained_model.directory,
        {
            "CHURN_ADMIN_ENABLED": "true",
            "CHURN_ADMIN_API_KEY": ADMIN_KEY,
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
        },
    )
    result = fuzz(
        server.url,
        tmp_path,
        "--include-path-regex",
        "^/admin",
        "--header",
        f"X-API-Key: {ADMIN_KEY}",
        examples=30,
        timeout_s=10,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Tested: 5" in result.stdout


# -- A/B test ----------------------------------------------------------------------------


def test_ab_test_routes_each_record_stably_and_logs_the_variant(
    app: Callable[..., FastAPI], pair: Pair, tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    settings = {"ab_challenger_share": SHARE, "ab_salt": SALT, "prediction_log_dir": log_dir}
    api, test_records = pair.api, pair.records
    expected = [variant_for(r[api.id_field], SHARE, SALT) for r in test_records]
    shas = {variant: pair.sha(variant) for variant in (CHAMPION, CHALLENGER)}
    x = features(pair.champion.test, api.contract)
    probabilities = {
        CHAMPION: pair.champion.pipeline.predict_proba(x)[:, 1],
        CHALLENGER: pair.challenger.pipeline.predict_proba(x)[:, 1],
    }
    singles_count = min(60, len(test_records))
    limit = ServingSettings().max_batch_size
    answered: list[dict[str, Any]] = []
    with AppClient(app(pair.candidate, **settings)) as client:
        for start in range(0, len(test_records), limit):
            chunk = test_records[start : start + limit]
            response = client.post("/predict/batch", json={"records": chunk})
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model_sha256"] == shas[CHAMPION]
            if CHALLENGER in expected[start : start + limit]:
                assert body["challenger"]["sha256"] == shas[CHALLENGER]
            answered += body["predictions"]
        singles = [client.post("/predict", json=r).json() for r in test_records[:singles_count]]
        anonymous = client.post("/predict", json={**api.example, api.id_field: None}).json()
        challenged = client.metric('churn_predictions_total{variant="challenger"}')

    assert [a["variant"] for a in answered] == expected
    share = expected.count(CHALLENGER) / len(expected)
    assert abs(share - SHARE) < 3 * math.sqrt(SHARE * (1 - SHARE) / len(expected)), share
    for row, (answer, variant) in enumerate(zip(answered, expected, strict=True)):
        assert answer["probability"] == pytest.approx(probabilities[variant][row], abs=1e-5)
    assert [(s["variant"], s["model_sha256"]) for s in singles] == [
        (v, shas[v]) for v in expected[:singles_count]
    ]  # the same record gets the same model, request after request
    assert (anonymous["variant"], anonymous["model_sha256"]) == (CHAMPION, shas[CHAMPION])
    assert challenged == expected.count(CHALLENGER) + expected[:singles_count].count(CHALLENGER)

    logged = read_predictions(log_dir)
    variants = [*expected, *expected[:singles_count], CHAMPION]
    assert [(r.variant, r.model_sha256) for r in logged] == [(v, shas[v]) for v in variants]
    assert all(r.shadow is None for r in logged)


# -- shadow mode -------------------------------------------------------------------------


def test_shadow_scores_are_logged_and_the_answers_do_not_change(
    app: Callable[..., FastAPI], pair: Pair, tmp_path: Path
) -> None:
    log_dir = tmp_path / "log"
    batch = pair.records[: ServingSettings().max_batch_size]
    singles = batch[:30]

    def answers(client: AppClient) -> list[Any]:
        sent = client.post("/predict/batch", json={"records": batch}).json()
        bodies = [sent, *(client.post("/predict", json=r).json() for r in singles)]
        for body in bodies:
            body.pop("request_id")  # the server makes a new one for each request
        return bodies

    shadowed = app(pair.candidate, shadow=True, prediction_log_dir=log_dir)
    with AppClient(shadowed) as client:
        with_shadow = answers(client)
        assert client.metric("churn_shadow_predictions_total") == len(batch) + len(singles)
        assert client.metric("churn_shadow_failures_total") == 0
    with AppClient(app()) as client:
        assert answers(client) == with_shadow  # shadow off: the same answers

    records = read_predictions(log_dir)
    assert len(records) == len(batch) + len(singles)
    x = features(pair.champion.test.iloc[: len(batch)], pair.api.contract)
    challenger = pair.challenger.pipeline.predict_proba(x)[:, 1]
    expected = [*challenger, *challenger[: len(singles)]]
    threshold = pair.candidate.card.threshold
    for record, probability in zip(records, expected, strict=True):
        assert (record.variant, record.model_sha256) == (CHAMPION, pair.sha(CHAMPION))
        assert record.shadow is not None
        assert record.shadow.model_sha256 == pair.sha(CHALLENGER)
        assert record.shadow.probability == pytest.approx(probability, abs=1e-5)
        assert record.shadow.decision == (record.shadow.probability >= threshold)


def test_live_drift_restarts_its_window_for_the_new_active_model(
    app: Callable[..., FastAPI], pair: Pair
) -> None:
    size = min(len(pair.records), ServingSettings().drift_window) // 2
    first, second = pair.records[:size], pair.records[size : size + size // 2]
    # The gauges are recomputed at most every CHURN_DRIFT_INTERVAL_S: keep it short.
    service = app(**ADMIN_SETTINGS, drift_interval_s=0.01)
    with AppClient(service, headers={"X-API-Key": API_KEY}) as client:

        def window() -> float:
            time.sleep(0.02)  # past the recompute interval
            return metric_value(client.get("/metrics").text, "churn_drift_window_samples")

        def admin(path: str, **kwargs: Any) -> httpx.Response:
            return client.post(path, headers={"X-API-Key": ADMIN_KEY}, **kwargs)

        assert client.post("/predict/batch", json={"records": first}).status_code == 200
        assert window() == len(first)
        loaded = admin("/admin/models/standby", json={"model_dir": str(pair.challenger.directory)})
        assert loaded.status_code == 200, loaded.text
        # A candidate does not change what is measured; the switch does.
        assert window() == len(first)
        assert admin("/admin/models/switch").status_code == 200
        assert window() == 0
        assert client.post("/predict/batch", json={"records": second}).status_code == 200
        assert window() == len(second)
        assert admin("/admin/models/rollback").status_code == 200
        assert window() == 0
