"""Model slots, A/B tests and shadow mode under a real `churn serve` on 127.0.0.1.

Two real models: the default one (`trained_model`, the champion) and one
trained with much stronger regularisation (`challenger_model`), so every
answer can be traced to the model that gave it by its hash and its score.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from churn import train
from churn.abtest import CHALLENGER, CHAMPION, variant_for
from churn.artifacts import CARD_FILE, ONNX_FILE
from churn.data import clean, features
from churn.params import Params
from churn.predlog import read_predictions
from churn.prepare import run as prepare
from churn.serving.schemas import EXAMPLE
from tests.integration.conftest import Server, TrainedModel, api_customers, stop_server
from tests.integration.test_openapi_fuzz import CHECKS as FUZZ_CHECKS
from tests.integration.test_openapi_fuzz import SCHEMATHESIS

pytestmark = pytest.mark.integration
API_KEY = "p" * 24
ADMIN_KEY = "a" * 24
ADMIN = {"CHURN_ADMIN_ENABLED": "true", "CHURN_API_KEY": API_KEY, "CHURN_ADMIN_API_KEY": ADMIN_KEY}
CLIENT_THREADS = 3
PHASE_S = 0.6  # traffic before the load, between the steps and after the rollback
SHARE, SALT = 0.3, "exp-1"


@pytest.fixture(scope="module")
def challenger_model(
    raw_real: pd.DataFrame, params: Params, tmp_path_factory: pytest.TempPathFactory
) -> TrainedModel:
    """A second model on the same split, trained with C = 0.05 instead of 1."""
    train_split, test_split = (clean(part) for part in prepare(raw_real, params.prepare))
    regularised = params.train.logistic_regression.model_copy(update={"C": 0.05})
    train_params = params.train.model_copy(update={"logistic_regression": regularised})
    pipeline, metrics = train.run(train_split, train_params)
    directory = tmp_path_factory.mktemp("challenger")
    train.write_model(
        pipeline,
        train_split,
        directory,
        params=train_params,
        drift=params.drift,
        metrics=metrics,
        data={},
    )
    return TrainedModel(directory, pipeline, test_split)


def _sha(model: TrainedModel) -> str:
    sha: str = json.loads((model.directory / CARD_FILE).read_text())["onnx_sha256"]
    return sha


def _metric(client: httpx.Client, series: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {series} in /metrics")


# -- slots -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    started: float
    ended: float
    outcome: int | str  # the status code, or the transport error's name
    sha256: str | None


class Clients:
    """Client threads posting /predict back to back while the block runs; every answer kept."""

    def __init__(self, server: Server, threads: int) -> None:
        self.server = server
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
                    response = client.post("/predict", json=EXAMPLE)
                except httpx.HTTPError as exc:
                    self.answers.append(Answer(started, time.monotonic(), type(exc).__name__, None))
                    continue
                sha = response.json()["model_sha256"] if response.status_code == 200 else None
                self.answers.append(Answer(started, time.monotonic(), response.status_code, sha))


def test_load_switch_and_rollback_under_load_fail_no_request(
    serve: Callable[..., Server], trained_model: TrainedModel, challenger_model: TrainedModel
) -> None:
    server = serve(trained_model.directory, ADMIN)
    old, new = _sha(trained_model), _sha(challenger_model)
    with (
        Clients(server, CLIENT_THREADS) as answers,
        server.client(headers={"X-API-Key": ADMIN_KEY}) as admin,
    ):
        time.sleep(PHASE_S)
        loaded = admin.post(
            "/admin/models/standby", json={"model_dir": str(challenger_model.directory)}
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


def _copy_model(source: Path, target: Path) -> Path:
    target.mkdir()
    for path in source.iterdir():
        (target / path.name).write_bytes(path.read_bytes())
    return target


def test_a_model_that_cannot_load_is_refused_and_the_slots_stay(
    serve: Callable[..., Server], trained_model: TrainedModel, tmp_path: Path
) -> None:
    corrupt = _copy_model(trained_model.directory, tmp_path / "corrupt")
    with (corrupt / ONNX_FILE).open("ab") as handle:
        handle.write(b"junk")
    different = _copy_model(trained_model.directory, tmp_path / "different")
    card = json.loads((different / CARD_FILE).read_text())
    card["reference"]["scores"][0] += 0.1
    (different / CARD_FILE).write_text(json.dumps(card))

    server = serve(trained_model.directory, ADMIN)
    with server.client(headers={"X-API-Key": ADMIN_KEY}) as admin:
        before = admin.get("/admin/models").json()
        for directory, phrase in (
            (tmp_path / "nowhere", "model_card.json: not found"),
            (corrupt, "does not match the card"),
            (different, "self-check failed"),
        ):
            response = admin.post("/admin/models/standby", json={"model_dir": str(directory)})
            assert response.status_code == 422, response.text
            (problem,) = response.json()["detail"]
            assert problem["field"] == "model_dir" and phrase in problem["message"], problem
        for body in ({}, {"model_dir": str(corrupt), "model_uri": "models:/churn@challenger"}):
            response = admin.post("/admin/models/standby", json=body)
            assert response.status_code == 422
            assert "exactly one" in response.text
        assert admin.post("/admin/models/switch").status_code == 409
        assert admin.post("/admin/models/rollback").status_code == 409
        assert admin.delete("/admin/models/standby").status_code == 409
        assert admin.get("/admin/models").json() == before
        assert admin.post("/predict", json=EXAMPLE, headers={"X-API-Key": API_KEY}).is_success
        assert _metric(admin, 'churn_model_loads_total{outcome="failed"}') == 3


def test_admin_needs_its_own_key(serve: Callable[..., Server], trained_model: TrainedModel) -> None:
    server = serve(trained_model.directory, ADMIN)
    with server.client() as client:
        for headers in ({}, {"X-API-Key": API_KEY}):
            assert client.get("/admin/models", headers=headers).status_code == 401
            assert client.post("/admin/models/switch", headers=headers).status_code == 401
        assert client.get("/admin/models", headers={"X-API-Key": ADMIN_KEY}).status_code == 200
        assert (
            client.post("/predict", json=EXAMPLE, headers={"X-API-Key": ADMIN_KEY}).status_code
            == 401
        )


def test_admin_is_off_by_default(server: Server) -> None:
    with server.client() as client:
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
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:9",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": "2",
        },
    )
    result = subprocess.run(
        [
            SCHEMATHESIS, "run", f"{server.url}/openapi.json",
            "--include-path-regex", "^/admin",
            "--checks", FUZZ_CHECKS,
            "--max-examples", "30",
            "--seed", "1",
            "--request-timeout", "10",
            "--no-color",
            "--report-dir", str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Tested: 5" in result.stdout
    assert "/admin is enabled without an API key" in server.log()  # open, but said so


# -- A/B test ----------------------------------------------------------------------------


def test_ab_test_routes_each_customer_stably_and_logs_the_variant(
    serve: Callable[..., Server],
    trained_model: TrainedModel,
    challenger_model: TrainedModel,
    tmp_path: Path,
) -> None:
    log_dir = tmp_path / "log"
    server = serve(
        trained_model.directory,
        {
            "CHURN_CHALLENGER_MODEL_DIR": str(challenger_model.directory),
            "CHURN_AB_CHALLENGER_SHARE": str(SHARE),
            "CHURN_AB_SALT": SALT,
            "CHURN_PREDICTION_LOG_DIR": str(log_dir),
        },
    )
    customers = api_customers(trained_model.test)
    expected = [variant_for(c["customer_id"], SHARE, SALT) for c in customers]
    shas = {CHAMPION: _sha(trained_model), CHALLENGER: _sha(challenger_model)}
    x = features(trained_model.test)
    probabilities = {
        CHAMPION: trained_model.pipeline.predict_proba(x)[:, 1],
        CHALLENGER: challenger_model.pipeline.predict_proba(x)[:, 1],
    }
    answered: list[dict[str, Any]] = []
    with server.client() as client:
        for start in range(0, len(customers), 500):
            response = client.post(
                "/predict/batch", json={"customers": customers[start : start + 500]}
            )
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["model_sha256"] == shas[CHAMPION]
            assert body["challenger"]["sha256"] == shas[CHALLENGER]
            answered += body["predictions"]
        singles = [client.post("/predict", json=c).json() for c in customers[:60]]
        anonymous = client.post("/predict", json={**EXAMPLE, "customer_id": None}).json()
        challenged = _metric(client, 'churn_predictions_total{variant="challenger"}')
    stop_server(server)

    assert [a["variant"] for a in answered] == expected
    share = expected.count(CHALLENGER) / len(expected)
    assert 0.26 < share < 0.34, share  # 1,409 customers: 0.3 ± 3 standard errors
    for row, (answer, variant) in enumerate(zip(answered, expected, strict=True)):
        assert answer["churn_probability"] == pytest.approx(probabilities[variant][row], abs=1e-5)
    assert [(s["variant"], s["model_sha256"]) for s in singles] == [
        (v, shas[v]) for v in expected[:60]
    ]  # the same customer gets the same model, request after request
    assert (anonymous["variant"], anonymous["model_sha256"]) == (CHAMPION, shas[CHAMPION])
    assert challenged == expected.count(CHALLENGER) + expected[:60].count(CHALLENGER)

    records = read_predictions(log_dir)
    assert len(records) == len(customers) + 60 + 1
    logged = [*expected, *expected[:60], CHAMPION]
    assert [(r.variant, r.model_sha256) for r in records] == [(v, shas[v]) for v in logged]
    assert all(r.shadow is None for r in records)


# -- shadow mode -------------------------------------------------------------------------


def test_shadow_scores_are_logged_and_the_answers_do_not_change(
    serve: Callable[..., Server],
    server: Server,
    trained_model: TrainedModel,
    challenger_model: TrainedModel,
    tmp_path: Path,
) -> None:
    log_dir = tmp_path / "log"
    shadowed = serve(
        trained_model.directory,
        {
            "CHURN_CHALLENGER_MODEL_DIR": str(challenger_model.directory),
            "CHURN_SHADOW": "true",
            "CHURN_PREDICTION_LOG_DIR": str(log_dir),
        },
    )
    customers = api_customers(trained_model.test)[:300]
    same_id = {"X-Request-ID": "same"}

    def answers(target: Server) -> list[Any]:
        with target.client(headers=same_id) as client:
            batch = client.post("/predict/batch", json={"customers": customers}).json()
            singles = [client.post("/predict", json=c).json() for c in customers[:30]]
        return [batch, *singles]

    assert answers(shadowed) == answers(server)  # shadow off: the module's default server
    with shadowed.client() as client:
        assert _metric(client, "churn_shadow_predictions_total") == 330
        assert _metric(client, "churn_shadow_failures_total") == 0
    stop_server(shadowed)

    records = read_predictions(log_dir)
    assert len(records) == 330
    challenger = challenger_model.pipeline.predict_proba(features(trained_model.test.iloc[:300]))[
        :, 1
    ]
    expected = [*challenger, *challenger[:30]]
    for record, probability in zip(records, expected, strict=True):
        assert (record.variant, record.model_sha256) == (CHAMPION, _sha(trained_model))
        assert record.shadow is not None
        assert record.shadow.model_sha256 == _sha(challenger_model)
        assert record.shadow.churn_probability == pytest.approx(probability, abs=1e-5)
        assert record.shadow.churn == (record.shadow.churn_probability >= 0.5)


def test_live_drift_restarts_its_window_for_the_new_active_model(
    serve: Callable[..., Server], trained_model: TrainedModel, challenger_model: TrainedModel
) -> None:
    # The gauges are recomputed at most every CHURN_DRIFT_INTERVAL_S: keep it short.
    server = serve(trained_model.directory, {**ADMIN, "CHURN_DRIFT_INTERVAL_S": "0.01"})
    customers = api_customers(trained_model.test.head(50))
    with (
        server.client(headers={"X-API-Key": API_KEY}) as client,
        server.client(headers={"X-API-Key": ADMIN_KEY}) as admin,
    ):
        assert client.post("/predict/batch", json={"customers": customers}).status_code == 200
        assert window(client) == 50
        loaded = admin.post(
            "/admin/models/standby", json={"model_dir": str(challenger_model.directory)}
        )
        assert loaded.status_code == 200, loaded.text
        # A candidate does not change what is measured; the switch does.
        assert window(client) == 50
        assert admin.post("/admin/models/switch").status_code == 200
        assert window(client) == 0
        assert client.post("/predict/batch", json={"customers": customers[:20]}).status_code == 200
        assert window(client) == 20
        assert admin.post("/admin/models/rollback").status_code == 200
        assert window(client) == 0


def window(client: httpx.Client) -> float:
    time.sleep(0.05)  # past the recompute interval
    return _metric(client, "churn_drift_window_samples")
