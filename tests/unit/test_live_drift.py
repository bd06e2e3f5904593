"""The service's live drift: the window of recent records, the monitor and its gauges.

Sizes (windows, minimums, batches) are taken from the real test split, and
the change to detect is the domain's own scenario (`Domain.scenarios.shift`).
"""

from __future__ import annotations

import json
import logging
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydantic
import pytest

from churn.core.artifacts import CARD_FILE, DRIFT_PROFILE_FILE, ModelCard, file_sha256
from churn.core.contract import Categorical, Contract, api_name
from churn.core.data import clean, read_csv
from churn.core.domain import Domain, Scenarios
from churn.core.errors import DataError, ModelError
from churn.core.params import Params
from churn.monitoring.drift import ModelDriftProfile, compare_counts, count, model_profile
from churn.pipeline.prepare import run as prepare
from churn.serving import drift_monitor, loader
from churn.serving.drift_monitor import BLOCKS, DriftMonitor, DriftWindow
from churn.serving.middleware import ServiceMetrics
from churn.serving.records import to_api_records
from churn.serving.schemas import RecordBase, Schemas
from churn.serving.settings import ServingSettings
from tests.support.columns import ruled_columns
from tests.support.models import copy_model


@pytest.fixture(scope="module")
def splits(
    raw_real: pd.DataFrame, params: Params, domain: Domain
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real training and test splits, as the pipeline cuts them (read-only)."""
    return prepare(raw_real, params.prepare, domain)


@pytest.fixture(scope="module")
def profile(
    splits: tuple[pd.DataFrame, pd.DataFrame], params: Params, contract: Contract
) -> ModelDriftProfile:
    return model_profile(splits[0], params.drift, contract=contract)


@pytest.fixture(scope="module")
def scenarios(domain: Domain) -> Scenarios:
    if domain.scenarios is None:
        pytest.skip("the domain has no scenarios (a realistic shift to detect)")
    return domain.scenarios


def half_of(frame: pd.DataFrame) -> int:
    """Half the rows of ``frame``, in whole blocks of a window of that size."""
    size = len(frame) // 2 // BLOCKS * BLOCKS
    assert size >= 10 * BLOCKS, "the test split is too small for these tests"
    return size


@pytest.fixture(scope="module")
def level_column(contract: Contract) -> Categorical:
    """A categorical feature in no cross-field rule, so any of its levels keeps a record
    valid, and never blank, so its bins are its levels."""
    ruled = ruled_columns(contract)  # either kind of rule: some level would break it
    for column in contract.categorical:
        if column.name not in ruled and len(column.levels) >= 2 and not column.nullable:
            return column
    pytest.skip("every categorical feature is in a cross-field rule or may be blank")


def records(api: Schemas, frame: pd.DataFrame) -> list[RecordBase]:
    """Rows of a cleaned frame as the API's validated records."""
    return [api.Record.model_validate(record) for record in to_api_records(frame, api.contract)]


def example(api: Schemas, **changes: Any) -> RecordBase:
    return api.Record.model_validate({**api.example, **changes})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def monitor(
    profile: ModelDriftProfile,
    metrics: ServiceMetrics,
    *,
    window: int,
    min_samples: int,
    interval_s: float = 10,
    clock: Clock | None = None,
) -> DriftMonitor:
    return DriftMonitor(
        profile,
        metrics,
        window=window,
        min_samples=min_samples,
        interval_s=interval_s,
        clock=clock or Clock(),
    )


def gauge(metrics: ServiceMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def no_verdict(metrics: ServiceMetrics) -> bool:
    value = gauge(metrics, "churn_drift_detected")
    return value is not None and math.isnan(value)


# --- the window -----------------------------------------------------------------


def test_the_window_bins_every_real_record_as_the_offline_check_does(
    raw_real: pd.DataFrame, profile: ModelDriftProfile, domain: Domain, api: Schemas
) -> None:
    """The window's own binning (bisect, dictionaries) against `churn drift`'s (numpy)."""
    everyone = clean(raw_real, domain)
    window = DriftWindow(profile.reference, size=len(everyone) + BLOCKS)
    window.add(records(api, everyone))
    rows, counts = window.counts()
    expected = count(profile.reference, everyone)
    assert rows == len(everyone)
    assert counts.keys() == expected.keys() == set(domain.contract.feature_names)
    for name, values in counts.items():
        assert values.tolist() == expected[name].tolist(), name


def test_one_record_lands_in_the_bins_bin_index_names(
    profile: ModelDriftProfile, api: Schemas
) -> None:
    record = example(api)
    window = DriftWindow(profile.reference, size=100)
    window.add([record])
    _, counts = window.counts()
    for feature in profile.reference.features:
        value = getattr(record, api_name(feature.name))
        (filled,) = np.flatnonzero(counts[feature.name])
        assert filled == feature.bin_index(value), feature.name


def test_the_window_keeps_the_last_records_and_at_most_a_tenth_more(
    profile: ModelDriftProfile, api: Schemas
) -> None:
    size = 100
    window = DriftWindow(profile.reference, size=size)
    assert window.block_size == size // BLOCKS
    for added in range(1, 400):
        window.add([example(api)])
        if added < size:
            assert window.rows == added
        else:
            assert size <= window.rows < size + window.block_size


def test_old_records_leave_the_window_a_block_at_a_time(
    profile: ModelDriftProfile, api: Schemas, level_column: Categorical
) -> None:
    field = api_name(level_column.name)
    first, last = level_column.levels[0], level_column.levels[-1]
    bins = len(level_column.levels)

    def counts_of(window: DriftWindow) -> tuple[int, list[int]]:
        rows, counts = window.counts()
        return rows, counts[level_column.name].tolist()

    def spread(at_first: int, at_last: int) -> list[int]:
        return [at_first, *[0] * (bins - 2), at_last]  # the levels' order is the contract's

    window = DriftWindow(profile.reference, size=100)  # blocks of 10
    window.add([example(api, **{field: last})] * 100)
    window.add([example(api, **{field: first})] * 9)
    assert counts_of(window) == (109, spread(9, 100))
    window.add([example(api, **{field: first})])  # seals a block: the oldest leaves
    assert counts_of(window) == (100, spread(10, 90))
    window.add([example(api, **{field: first})] * 85)  # 8 more blocks, 5 waiting
    assert counts_of(window) == (105, spread(95, 10))


def test_a_batch_counts_as_its_records_one_by_one(
    splits: tuple[pd.DataFrame, pd.DataFrame], profile: ModelDriftProfile, api: Schemas
) -> None:
    batch = records(api, splits[1])
    size = BLOCKS * max(1, len(batch) // 15)  # ~15 blocks' worth: some leave during the call
    together, one_by_one = (DriftWindow(profile.reference, size=size) for _ in range(2))
    together.add(batch)
    for record in batch:
        one_by_one.add([record])
    (rows, counts), (rows_1, counts_1) = together.counts(), one_by_one.counts()
    block = together.block_size
    assert rows == rows_1 == min(len(batch) // block, BLOCKS) * block + len(batch) % block
    assert rows < len(batch)
    for name in counts:
        assert counts[name].tolist() == counts_1[name].tolist()
        assert counts[name].sum() == rows


def test_a_window_smaller_than_its_blocks_is_refused(profile: ModelDriftProfile) -> None:
    with pytest.raises(ValueError, match=f"smaller than its {BLOCKS} blocks"):
        DriftWindow(profile.reference, size=BLOCKS - 1)


# --- the monitor and its gauges ---------------------------------------------------


def test_no_verdict_before_the_minimum(
    splits: tuple[pd.DataFrame, pd.DataFrame],
    profile: ModelDriftProfile,
    api: Schemas,
) -> None:
    half = half_of(splits[1])
    metrics = ServiceMetrics()
    live = monitor(profile, metrics, window=2 * half, min_samples=half)
    assert no_verdict(metrics)
    live.add(records(api, splits[1].head(half - 1)))
    assert live.refresh() is None
    assert no_verdict(metrics)
    assert gauge(metrics, "churn_drift_window_samples") == half - 1
    first = profile.reference.features[0].name
    assert gauge(metrics, "churn_feature_drift", feature=first) is None


def test_records_like_the_training_data_do_not_drift_and_match_churn_drift(
    splits: tuple[pd.DataFrame, pd.DataFrame], profile: ModelDriftProfile, api: Schemas
) -> None:
    metrics = ServiceMetrics()
    test_split = splits[1]
    live = monitor(profile, metrics, window=len(test_split) + BLOCKS, min_samples=1)
    live.add(records(api, test_split))
    result = live.refresh()
    assert result is not None
    assert not result.drift
    assert gauge(metrics, "churn_drift_detected") == 0
    assert gauge(metrics, "churn_drift_window_samples") == len(test_split)
    # The same numbers as the offline comparison of the same records.
    offline = compare_counts(
        profile.reference, count(profile.reference, test_split), profile.params
    )
    for feature in offline.features:
        psi = gauge(metrics, "churn_feature_drift", feature=feature.feature)
        assert psi == pytest.approx(feature.psi, abs=1e-12), feature.feature
        assert psi is not None and psi < profile.params.psi_threshold


def test_the_domains_shift_is_detected_on_the_features_it_moved(
    splits: tuple[pd.DataFrame, pd.DataFrame],
    profile: ModelDriftProfile,
    api: Schemas,
    scenarios: Scenarios,
) -> None:
    half = half_of(splits[1])
    metrics, clock = ServiceMetrics(), Clock()
    live = monitor(profile, metrics, window=half, min_samples=half, clock=clock)
    live.add(records(api, splits[1].head(half)))
    assert live.refresh() is not None
    assert gauge(metrics, "churn_drift_detected") == 0
    shifted = scenarios.shift(splits[1].tail(half), np.random.default_rng(0), 1.0)
    live.add(records(api, shifted))
    clock.now += live.interval_s
    result = live.refresh()
    assert result is not None
    assert result.drift
    assert gauge(metrics, "churn_drift_detected") == 1
    assert gauge(metrics, "churn_drift_window_samples") == half  # only the shifted ones
    assert set(result.drifted_features) <= set(scenarios.shifted_features)
    threshold = profile.params.psi_threshold
    for name in result.drifted_features:
        psi = gauge(metrics, "churn_feature_drift", feature=name)
        assert psi is not None and psi >= threshold, name


def test_the_comparison_is_cached_for_the_interval(
    splits: tuple[pd.DataFrame, pd.DataFrame],
    profile: ModelDriftProfile,
    api: Schemas,
) -> None:
    half = half_of(splits[1])
    metrics, clock = ServiceMetrics(), Clock()
    live = monitor(profile, metrics, window=4 * half, min_samples=half, interval_s=10, clock=clock)
    first_part, second_part = splits[1].head(half), splits[1].tail(half // 5)
    live.add(records(api, first_part))
    first = live.refresh()
    live.add(records(api, second_part))
    clock.now = 9.9
    assert live.refresh() is first
    assert gauge(metrics, "churn_drift_window_samples") == half
    clock.now = 10
    second = live.refresh()
    assert second is not first and second is not None
    assert second.current_rows == half + half // 5
    assert gauge(metrics, "churn_drift_window_samples") == half + half // 5


def test_verdict_changes_are_logged(
    splits: tuple[pd.DataFrame, pd.DataFrame],
    profile: ModelDriftProfile,
    api: Schemas,
    scenarios: Scenarios,
    caplog: pytest.LogCaptureFixture,
) -> None:
    half = half_of(splits[1])
    clock = Clock()
    live = monitor(
        profile, ServiceMetrics(), window=half, min_samples=half, interval_s=1, clock=clock
    )
    caplog.set_level(logging.INFO, logger=drift_monitor.__name__)
    live.add(records(api, splits[1].head(half)))
    live.refresh()
    clock.now += 1
    live.refresh()  # the same verdict: not logged again
    shifted = scenarios.shift(splits[1].tail(half), np.random.default_rng(1), 1.0)
    live.add(records(api, shifted))
    clock.now += 1
    live.refresh()
    logged = [(r.levelname, r.getMessage().split(":")[1].strip()) for r in caplog.records]
    assert logged == [("INFO", "NO DRIFT"), ("WARNING", "DRIFT")]


def test_a_failing_comparison_leaves_no_verdict_and_metrics_still_answer(
    splits: tuple[pd.DataFrame, pd.DataFrame],
    profile: ModelDriftProfile,
    api: Schemas,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    half = half_of(splits[1])
    metrics, clock = ServiceMetrics(), Clock()
    live = monitor(profile, metrics, window=2 * half, min_samples=half, clock=clock)
    live.add(records(api, splits[1].head(half)))
    live.refresh()
    assert gauge(metrics, "churn_drift_detected") == 0

    def broken(*args: object, **kwargs: object) -> None:
        raise DataError("boom")

    monkeypatch.setattr(drift_monitor, "compare_counts", broken)
    clock.now += live.interval_s
    assert live.refresh() is None
    assert no_verdict(metrics)
    assert "comparing the window with the training data failed" in caplog.text


def test_without_a_profile_there_is_no_monitor(
    profile: ModelDriftProfile, caplog: pytest.LogCaptureFixture
) -> None:
    model = loader.LoadedModel(None, None, "1", "models", None)  # type: ignore[arg-type]
    caplog.set_level(logging.INFO, logger=drift_monitor.__name__)
    assert DriftMonitor.start(model, ServingSettings(), ServiceMetrics()) is None
    assert "live drift metrics off" in caplog.text
    with_profile = replace(model, drift_profile=profile)
    settings = ServingSettings(drift_window=2000, drift_min_samples=100, drift_interval_s=5)
    started = DriftMonitor.start(with_profile, settings, ServiceMetrics())
    assert started is not None
    assert (started.window.block_size, started.min_samples, started.interval_s) == (200, 100, 5)


def test_a_new_monitor_clears_what_the_previous_one_set(
    splits: tuple[pd.DataFrame, pd.DataFrame],
    profile: ModelDriftProfile,
    api: Schemas,
) -> None:
    """When the served model changes, the old model's PSI must not linger."""
    half = half_of(splits[1])
    metrics = ServiceMetrics()
    first = profile.reference.features[0].name
    old = monitor(profile, metrics, window=2 * half, min_samples=half)
    old.add(records(api, splits[1].head(half)))
    old.refresh()
    assert gauge(metrics, "churn_feature_drift", feature=first) is not None
    monitor(profile, metrics, window=2 * half, min_samples=half)
    assert gauge(metrics, "churn_feature_drift", feature=first) is None
    assert no_verdict(metrics)
    assert gauge(metrics, "churn_drift_window_samples") == 0


def test_settings_refuse_a_minimum_the_window_cannot_reach() -> None:
    with pytest.raises(pydantic.ValidationError, match="must not exceed CHURN_DRIFT_WINDOW"):
        ServingSettings(drift_window=100, drift_min_samples=101)


def test_the_live_path_imports_nothing_heavy(profile: ModelDriftProfile, tmp_path: Path) -> None:
    """The serving image has numpy, not pandas, scipy or matplotlib."""
    path = tmp_path / DRIFT_PROFILE_FILE
    path.write_text(profile.model_dump_json())
    script = f"""
import json, sys
from pathlib import Path
from churn.core.domain import load_domain
from churn.monitoring.drift import ModelDriftProfile
from churn.serving import schemas
from churn.serving.drift_monitor import DriftMonitor
from churn.serving.middleware import ServiceMetrics
api = schemas.build(load_domain().contract)
profile = ModelDriftProfile.model_validate_json(Path({str(path)!r}).read_bytes())
metrics = ServiceMetrics()
live = DriftMonitor(profile, metrics, window=100, min_samples=100, interval_s=1)
live.add([api.Record.model_validate(api.example)] * 100)
result = live.refresh()
print(json.dumps({{"drift": result.drift, "heavy": sorted(
    m for m in ("pandas", "scipy", "matplotlib", "sklearn") if m in sys.modules)}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    # 100 copies of one record: every feature sits in a single bin, so it drifts.
    assert json.loads(done.stdout) == {"drift": True, "heavy": []}


# --- the profile on disk: written by train, checked by the loader -------------------


@pytest.fixture(scope="module")
def model_dir(small_model_dir: Path) -> Path:
    """A model trained on the small real sample, written as `train` writes it."""
    return small_model_dir


def test_train_writes_the_profile_and_its_hash_and_the_loader_reads_it(
    model_dir: Path, params: Params, contract: Contract, sample_csv: Path
) -> None:
    card = ModelCard.read(model_dir / CARD_FILE)
    assert card.drift_profile_sha256 == file_sha256(model_dir / DRIFT_PROFILE_FILE)
    loaded = loader.load_directory(model_dir, contract, version="1", source="test")
    assert loaded.drift_profile is not None
    assert loaded.drift_profile.params == params.drift
    assert loaded.drift_profile.reference.rows == len(read_csv(sample_csv))


def test_a_missing_profile_turns_live_drift_off(
    model_dir: Path, contract: Contract, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = copy_model(model_dir, tmp_path / "model")
    (directory / DRIFT_PROFILE_FILE).unlink()
    card = ModelCard.read(directory / CARD_FILE)
    assert loader.load_drift_profile(directory, card, contract) is None
    assert "not found although the model card lists it" in caplog.text
    caplog.clear()
    older = replace(card, drift_profile_sha256=None)  # a model from before drift profiles
    assert loader.load_drift_profile(directory, older, contract) is None
    assert caplog.text == ""


def test_a_profile_that_is_not_the_models_is_refused(
    model_dir: Path, contract: Contract, tmp_path: Path
) -> None:
    directory = copy_model(model_dir, tmp_path / "model")
    path = directory / DRIFT_PROFILE_FILE
    data = json.loads(path.read_text())
    data["params"]["psi_threshold"] = 0.5
    path.write_text(json.dumps(data))
    card = ModelCard.read(directory / CARD_FILE)
    with pytest.raises(ModelError, match="does not match the card's"):
        loader.load_drift_profile(directory, card, contract)
    unchecked = replace(card, drift_profile_sha256=None)
    assert loader.load_drift_profile(directory, unchecked, contract) is not None
    categorical = next(f for f in data["reference"]["features"] if f["kind"] == "categorical")
    categorical["levels"][0] = "not one of the contract's levels"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="the contract lists"):
        loader.load_drift_profile(directory, unchecked, contract)
    path.write_text("{}")
    with pytest.raises(ModelError, match="not a drift profile"):
        loader.load_drift_profile(directory, unchecked, contract)
