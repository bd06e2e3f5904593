"""Model slots, A/B routing and shadow scoring (`churn.serving.rollout`), with stand-in models.

The stand-ins answer a fixed score per model (or raise), so every test can
tell which model scored which record. The real thing, under uvicorn and
under load, is tests/integration/test_rollouts.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from churn.core.artifacts import ModelCard
from churn.core.contract import Contract
from churn.core.errors import ModelError
from churn.monitoring.abtest import CHALLENGER, CHAMPION, variant_for
from churn.monitoring.predlog import read_predictions
from churn.serving import rollout as rollout_module
from churn.serving.app import create_app
from churn.serving.loader import LoadedModel
from churn.serving.middleware import ServiceMetrics
from churn.serving.onnx_model import OnnxModel
from churn.serving.prediction_log import encode_predictions
from churn.serving.rollout import (
    CANDIDATE,
    PREVIOUS,
    Rollout,
    RolloutError,
    Slots,
    Traffic,
)
from churn.serving.schemas import RecordBase, Schemas
from churn.serving.settings import ServingSettings
from tests.support.asgi import AppClient


class StandIn(OnnxModel):
    """Scores every row ``score``; raises when ``score`` is None."""

    def __init__(self, score: float | None) -> None:  # no session: nothing to load
        self.score = score
        self.calls = 0

    def predict(
        self,
        numeric: Sequence[Sequence[float]] | np.ndarray,
        categorical: Sequence[Sequence[str]] | np.ndarray,
    ) -> np.ndarray:
        self.calls += 1
        if self.score is None:
            raise RuntimeError("the stand-in was told to fail")
        return np.full(len(numeric), self.score)


def stand_in(name: str, score: float | None, threshold: float = 0.5) -> LoadedModel:
    card = ModelCard(
        sha256=f"pipeline-{name}",
        onnx_sha256=f"{name:0<64}",
        onnx_max_abs_diff=0.0,
        estimator="stand_in",
        threshold=threshold,
        params={},
        features=[],
        data={},
        metrics={},
        reference={},
    )
    return LoadedModel(StandIn(score), card, version=name, source=f"/models/{name}")


A, B, C = stand_in("a", 0.2), stand_in("b", 0.8, threshold=0.9), stand_in("c", 0.5)


@pytest.fixture(scope="module")
def ids(raw_real: pd.DataFrame, contract: Contract) -> list[str]:
    """Up to 2,000 distinct real record ids (they match the contract's id pattern)."""
    real = raw_real[contract.id.name].dropna().drop_duplicates()
    return [str(value) for value in real.head(2000)]


def settings(**values: Any) -> ServingSettings:
    return ServingSettings(**values)


def records(api: Schemas, ids: Sequence[str | None]) -> list[RecordBase]:
    return [
        api.Record.model_validate_json(json.dumps({**api.example, api.id_field: i})) for i in ids
    ]


# -- the slots ---------------------------------------------------------------------------


def test_switch_then_rollback_is_an_exact_undo() -> None:
    loaded = Slots(A).load(B)
    assert (loaded.active, loaded.standby, loaded.role) == (A, B, CANDIDATE)
    switched = loaded.switch()
    assert (switched.active, switched.standby, switched.role) == (B, A, PREVIOUS)
    assert switched.candidate is None  # the previous model gets no traffic
    assert switched.rollback() == loaded


def test_a_repeated_switch_or_rollback_is_refused_not_a_second_swap() -> None:
    switched = Slots(A).load(B).switch()
    with pytest.raises(RolloutError, match="roll back to it"):
        switched.switch()
    with pytest.raises(RolloutError, match="nothing to roll back"):
        switched.rollback().rollback()


def test_switch_needs_a_standby_and_rollback_needs_a_switch() -> None:
    with pytest.raises(RolloutError, match="no standby"):
        Slots(A).switch()
    with pytest.raises(RolloutError, match="nothing to roll back"):
        Slots(A).rollback()
    with pytest.raises(RolloutError, match="nothing to roll back"):
        Slots(A).load(B).rollback()  # would promote an untried candidate
    with pytest.raises(RolloutError, match="no standby"):
        Slots(A).unload()


def test_loading_replaces_any_standby_and_unload_empties_it() -> None:
    switched = Slots(A).load(B).switch()
    assert switched.load(C) == Slots(B, C, CANDIDATE)
    assert switched.unload() == Slots(B)


# -- routing -----------------------------------------------------------------------------


def test_without_a_candidate_or_a_share_the_champion_answers_everyone(ids: list[str]) -> None:
    metrics = ServiceMetrics()
    ab = settings(ab_challenger_share=0.5)
    assert Traffic.build(Slots(A), ab, metrics).challenger is None
    assert Traffic.build(Slots(A).load(B).switch(), ab, metrics).challenger is None  # previous
    off = Traffic.build(Slots(A).load(B), settings(), metrics)
    assert off.challenger is None and off.shadow is None
    assert {off.variant(i) for i in ids} == {CHAMPION}


def test_variants_follow_the_stable_hash_and_no_id_gets_the_champion(ids: list[str]) -> None:
    share = 0.3
    traffic = Traffic.build(
        Slots(A).load(B), settings(ab_challenger_share=share, ab_salt="s1"), ServiceMetrics()
    )
    variants = [traffic.variant(i) for i in ids]
    assert variants == [variant_for(i, share, "s1") for i in ids]
    three_sigma = 3 * math.sqrt(share * (1 - share) / len(ids))
    assert abs(variants.count(CHALLENGER) / len(ids) - share) < three_sigma
    assert traffic.variant(None) == CHAMPION
    assert traffic.model(CHALLENGER) is B and traffic.model(CHAMPION) is A


def test_a_batch_is_scored_per_record_by_its_variants_model(api: Schemas, ids: list[str]) -> None:
    traffic = Traffic.build(Slots(A).load(B), settings(ab_challenger_share=0.5), ServiceMetrics())
    some: list[str | None] = [*ids[:50], None]
    scored = traffic.score(*api.model_inputs(records(api, some)), some)
    assert scored.variants is not None
    assert scored.variants == [traffic.variant(i) for i in some]
    assert {CHAMPION, CHALLENGER} == set(scored.variants)
    assert scored.scores == [0.8 if v == CHALLENGER else 0.2 for v in scored.variants]
    assert scored.shadow is None

    for variant, score in ((CHAMPION, 0.2), (CHALLENGER, 0.8)):
        alike = [i for i in ids[:50] if traffic.variant(i) == variant]
        inputs = api.model_inputs(records(api, alike))
        assert traffic.score(*inputs, alike).scores == [score] * len(alike)


def test_the_shadow_scores_the_champions_records_only(api: Schemas, ids: list[str]) -> None:
    metrics = ServiceMetrics()
    shadow_only = Traffic.build(Slots(A).load(B), settings(shadow=True), metrics)
    some = ids[:20]
    scored = shadow_only.score(*api.model_inputs(records(api, some)), some)
    assert scored.scores == [0.2] * 20 and scored.variants is None
    assert scored.shadow is not None
    assert scored.shadow.model is B and scored.shadow.scores == [0.8] * 20

    both = Traffic.build(Slots(A).load(B), settings(shadow=True, ab_challenger_share=0.5), metrics)
    scored = both.score(*api.model_inputs(records(api, some)), some)
    assert scored.variants is not None and scored.shadow is not None
    assert scored.shadow.scores == [0.8 if v == CHAMPION else None for v in scored.variants]
    assert metrics.registry.get_sample_value("churn_shadow_predictions_total") == 20 + sum(
        v == CHAMPION for v in scored.variants
    )


def test_a_failing_shadow_is_counted_and_the_answer_stands(api: Schemas, ids: list[str]) -> None:
    metrics = ServiceMetrics()
    traffic = Traffic.build(Slots(A).load(stand_in("broken", None)), settings(shadow=True), metrics)
    some = ids[:3]
    for _ in range(2):
        scored = traffic.score(*api.model_inputs(records(api, some)), some)
        assert scored.scores == [0.2] * 3
        assert scored.shadow is None
    assert metrics.registry.get_sample_value("churn_shadow_failures_total") == 2


# -- the log -----------------------------------------------------------------------------


def test_records_name_the_variant_and_model_that_answered_and_the_shadow(
    api: Schemas, ids: list[str], tmp_path: Path
) -> None:
    traffic = Traffic.build(
        Slots(A).load(B), settings(shadow=True, ab_challenger_share=0.5), ServiceMetrics()
    )
    some: list[str | None] = [*ids[:30], None]
    batch = records(api, some)
    scored = traffic.score(*api.model_inputs(batch), some)
    data = encode_predictions(
        time.time(),
        "req-1",
        A,
        batch,
        scored.scores,
        id_field=api.id_field,
        variants=scored.variants,
        challenger=B,
        shadow=scored.shadow,
    )
    (tmp_path / "predictions-1.jsonl").write_bytes(data)
    logged = read_predictions(tmp_path)
    assert [r.id for r in logged] == some
    assert scored.variants is not None
    for record, variant in zip(logged, scored.variants, strict=True):
        assert record.variant == variant
        if variant == CHALLENGER:
            assert (record.model_sha256, record.probability, record.decision) == (
                B.sha256,
                0.8,
                False,  # the challenger's own threshold, 0.9
            )
            assert record.shadow is None
        else:
            assert (record.model_sha256, record.probability) == (A.sha256, 0.2)
            assert record.shadow is not None
            assert (record.shadow.model_sha256, record.shadow.probability) == (B.sha256, 0.8)
            assert record.shadow.decision is False


# -- loading -----------------------------------------------------------------------------


def _rollout(monkeypatch: pytest.MonkeyPatch, contract: Contract, delay_s: float = 0.0) -> Rollout:
    """A started rollout whose loads take ``delay_s`` and return C ("bad" directories fail)."""

    def fake_load(
        settings: ServingSettings,
        contract: Contract,
        *,
        model_dir: Path | None = None,
        model_uri: str | None = None,
    ) -> LoadedModel:
        time.sleep(delay_s)
        if model_dir == Path("bad"):
            raise ModelError("bad/model_card.json: not found")
        if model_dir == Path("crash"):
            raise KeyError("rows")
        return C

    monkeypatch.setattr(rollout_module, "load_model", fake_load)
    rollout = Rollout(settings(), ServiceMetrics(), contract)
    rollout.start(A, B)
    return rollout


def test_a_model_that_does_not_load_leaves_the_slots_as_they_were(
    monkeypatch: pytest.MonkeyPatch, contract: Contract
) -> None:
    rollout = _rollout(monkeypatch, contract)
    before = rollout.traffic
    with pytest.raises(ModelError, match="not found"):
        asyncio.run(rollout.load(model_dir=Path("bad")))
    with pytest.raises(ModelError, match=r"crash: cannot be loaded \(KeyError"):
        asyncio.run(rollout.load(model_dir=Path("crash")))
    assert rollout.traffic is before
    assert not rollout.loading
    loads = rollout.metrics.registry.get_sample_value
    assert loads("churn_model_loads_total", {"outcome": "failed"}) == 2
    assert asyncio.run(rollout.load(model_dir=Path("good"))) == Slots(A, C, CANDIDATE)
    assert loads("churn_model_loads_total", {"outcome": "loaded"}) == 1


def test_one_load_at_a_time_and_a_change_meanwhile_discards_it(
    monkeypatch: pytest.MonkeyPatch, contract: Contract
) -> None:
    rollout = _rollout(monkeypatch, contract, delay_s=0.2)

    async def load_twice() -> None:
        first = asyncio.create_task(rollout.load(model_dir=Path("good")))
        await asyncio.sleep(0.05)
        assert rollout.loading
        with pytest.raises(RolloutError, match="already being loaded"):
            await rollout.load(model_dir=Path("good"))
        rollout.switch()  # an emergency switch is never blocked by a load
        with pytest.raises(RolloutError, match="changed while the model loaded"):
            await first

    asyncio.run(load_twice())
    assert rollout.slots == Slots(B, A, PREVIOUS)  # the switch stands, the load was dropped


def test_the_slot_metrics_follow_the_slots(
    monkeypatch: pytest.MonkeyPatch, contract: Contract
) -> None:
    rollout = _rollout(monkeypatch, contract)
    rollout.switch()
    value = rollout.metrics.registry.get_sample_value
    assert value("churn_model_switches_total", {"action": "switch"}) == 1
    active = {"slot": "active", "role": "active", "version": "b", "sha256": B.sha256}
    standby = {"slot": "standby", "role": "previous", "version": "a", "sha256": A.sha256}
    assert value("churn_model_slot_info", active) == 1
    assert value("churn_model_slot_info", standby) == 1
    info = {"version": "b", "sha256": B.sha256, "estimator": "stand_in"}
    assert value("churn_model_info", info) == 1
    rollout.unload()
    assert value("churn_model_slot_info", standby) is None


# -- the app, in process -----------------------------------------------------------------


def test_a_failing_shadow_does_not_change_the_response(contract: Contract, api: Schemas) -> None:
    def answer(challenger: LoadedModel | None, shadow: bool) -> dict[str, Any]:
        app = create_app(settings(shadow=shadow), A, challenger, contract)
        with AppClient(app) as client:
            response = client.post("/predict", json=api.example)
            if challenger is not None:
                assert client.metric("churn_shadow_failures_total") == 1
        body: dict[str, Any] = response.json()
        body.pop("request_id")  # the server makes a new one for each request
        return body

    assert answer(stand_in("broken", None), shadow=True) == answer(None, shadow=False)


def test_admin_routes_exist_only_when_enabled(contract: Contract) -> None:
    key = "a" * 16
    for enabled, status in ((False, 404), (True, 200)):
        app = create_app(settings(admin_enabled=enabled, admin_api_key=key), A, contract=contract)
        with AppClient(app, headers={"X-API-Key": key}) as client:
            assert client.get("/admin/models").status_code == status


# -- settings ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"admin_api_key": "short"}, "CHURN_ADMIN_API_KEY must be at least 16"),
        ({"challenger_model_dir": "m", "challenger_model_uri": "models:/m@c"}, "not both"),
        ({"challenger_model_uri": "runs:/x"}, "models:/<name>@<alias>"),
        ({"ab_challenger_share": 1.5}, "less than or equal to 1"),
    ],
)
def test_unsafe_or_contradictory_settings_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**values)


def test_the_admin_key_never_falls_back_to_the_api_key() -> None:
    key, admin = "k" * 16, "a" * 16
    assert settings(api_key=key).admin_key is None
    own = settings(api_key=key, admin_api_key=admin).admin_key
    assert own is not None and own.get_secret_value() == admin
    with pytest.raises(ValidationError, match="CHURN_ADMIN_ENABLED needs CHURN_ADMIN_API_KEY"):
        settings(api_key=key, admin_enabled=True)
    with pytest.raises(ValidationError, match="must differ"):
        settings(api_key=key, admin_api_key=key)
