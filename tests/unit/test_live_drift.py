"""The service's live drift: the window of recent customers, the monitor and its gauges."""

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

from bench.drift import Shift, price_rise
from churn import contract
from churn.artifacts import CARD_FILE, DRIFT_PROFILE_FILE, ModelCard, file_sha256
from churn.data import clean, features
from churn.drift import ModelDriftProfile, compare_counts, count, model_profile
from churn.errors import DataError, ModelError
from churn.params import Params
from churn.prepare import run as prepare
from churn.serving import drift_monitor, loader
from churn.serving.drift_monitor import BLOCKS, DriftMonitor, DriftWindow
from churn.serving.middleware import ServiceMetrics
from churn.serving.schemas import EXAMPLE, Customer
from churn.serving.settings import ServingSettings

# Every month-to-month, every charge 15% higher: far past the drift rule.
PRICE_RISE = Shift("all month-to-month, +15%", move_share=1.0, rise=(0.15, 0.15))


@pytest.fixture(scope="module")
def splits(raw_real: pd.DataFrame, params: Params) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The real training and test splits, as the pipeline cuts them (read-only)."""
    train_split, test_split = (clean(part) for part in prepare(raw_real, params.prepare))
    return train_split, test_split


@pytest.fixture(scope="module")
def profile(splits: tuple[pd.DataFrame, pd.DataFrame], params: Params) -> ModelDriftProfile:
    return model_profile(splits[0], params.drift)


def customers(frame: pd.DataFrame) -> list[Customer]:
    """Rows of a cleaned frame as the API's validated customers."""
    rows: list[dict[str, Any]] = json.loads(features(frame).to_json(orient="records"))
    out = []
    for row in rows:
        request = {contract.api_name(k): v for k, v in row.items()}
        request["tenure"] = int(request["tenure"])  # a whole number, stored as float
        out.append(Customer.model_validate(request))
    return out


def example(**changes: Any) -> Customer:
    return Customer.model_validate({**EXAMPLE, **changes})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def monitor(
    profile: ModelDriftProfile,
    metrics: ServiceMetrics,
    *,
    window: int = 5000,
    min_samples: int = 500,
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


def test_the_window_bins_every_real_customer_as_the_offline_check_does(
    raw_real: pd.DataFrame, profile: ModelDriftProfile
) -> None:
    """The window's own binning (bisect, dictionaries) against `churn drift`'s (numpy)."""
    everyone = clean(raw_real)
    window = DriftWindow(profile.reference, size=10_000)
    window.add(customers(everyone))
    rows, counts = window.counts()
    expected = count(profile.reference, everyone)
    assert rows == len(everyone) == 7043
    assert counts.keys() == expected.keys() == set(contract.feature_names())
    for name, values in counts.items():
        assert values.tolist() == expected[name].tolist(), name


def test_one_customer_lands_in_the_bins_bin_index_names(profile: ModelDriftProfile) -> None:
    customer = example()
    window = DriftWindow(profile.reference, size=100)
    window.add([customer])
    _, counts = window.counts()
    for feature in profile.reference.features:
        value = getattr(customer, contract.api_name(feature.name))
        (filled,) = np.flatnonzero(counts[feature.name])
        assert filled == feature.bin_index(value), feature.name


def test_the_window_keeps_the_last_customers_and_at_most_a_tenth_more(
    profile: ModelDriftProfile,
) -> None:
    size = 100
    window = DriftWindow(profile.reference, size=size)
    assert window.block_size == size // BLOCKS
    for added in range(1, 400):
        window.add([example()])
        if added < size:
            assert window.rows == added
        else:
            assert size <= window.rows < size + window.block_size


def test_old_customers_leave_the_window_a_block_at_a_time(profile: ModelDriftProfile) -> None:
    window = DriftWindow(profile.reference, size=100)
    window.add([example(contract="Two year")] * 100)
    window.add([example(contract="Month-to-month")] * 9)
    rows, counts = window.counts()
    assert rows == 109
    assert counts["Contract"].tolist() == [9, 0, 100]  # contract order: M-t-m, one, two
    window.add([example(contract="Month-to-month")])  # seals a block: the oldest leaves
    rows, counts = window.counts()
    assert rows == 100
    assert counts["Contract"].tolist() == [10, 0, 90]
    window.add([example(contract="Month-to-month")] * 85)  # 8 more blocks, 5 waiting
    rows, counts = window.counts()
    assert rows == 105
    assert counts["Contract"].tolist() == [95, 0, 10]


def test_a_batch_counts_as_its_customers_one_by_one(
    splits: tuple[pd.DataFrame, pd.DataFrame], profile: ModelDriftProfile
) -> None:
    batch = customers(splits[1].head(730))
    together, one_by_one = (DriftWindow(profile.reference, size=500) for _ in range(2))
    together.add(batch)  # spans several blocks: some leave during the call
    for customer in batch:
        one_by_one.add([customer])
    (rows, counts), (rows_1, counts_1) = together.counts(), one_by_one.counts()
    assert rows == rows_1 == 530
    for name in counts:
        assert counts[name].tolist() == counts_1[name].tolist()
        assert counts[name].sum() == rows


def test_a_window_smaller_than_its_blocks_is_refused(profile: ModelDriftProfile) -> None:
    with pytest.raises(ValueError, match="smaller than its 10 blocks"):
        DriftWindow(profile.reference, size=9)


# --- the monitor and its gauges ---------------------------------------------------


def test_no_verdict_before_the_minimum(
    splits: tuple[pd.DataFrame, pd.DataFrame], profile: ModelDriftProfile
) -> None:
    metrics = ServiceMetrics()
    live = monitor(profile, metrics, min_samples=500)
    assert no_verdict(metrics)
    live.add(customers(splits[1].head(499)))
    assert live.refresh() is None
    assert no_verdict(metrics)
    assert gauge(metrics, "churn_drift_window_samples") == 499
    assert gauge(metrics, "churn_feature_drift", feature="tenure") is None


def test_customers_like_the_training_data_do_not_drift_and_match_churn_drift(
    splits: tuple[pd.DataFrame, pd.DataFrame], profile: ModelDriftProfile
) -> None:
    metrics = ServiceMetrics()
    live = monitor(profile, metrics)
    test_split = splits[1]
    live.add(customers(test_split))
    result = live.refresh()
    assert result is not None
    assert not result.drift
    assert gauge(metrics, "churn_drift_detected") == 0
    assert gauge(metrics, "churn_drift_window_samples") == len(test_split) == 1409
    # The same numbers as the offline comparison of the same customers.
    offline = compare_counts(
        profile.reference, count(profile.reference, test_split), profile.params
    )
    for feature in offline.features:
        psi = gauge(metrics, "churn_feature_drift", feature=feature.feature)
        assert psi == pytest.approx(feature.psi, abs=1e-12), feature.feature
        assert psi is not None and psi < profile.params.psi_threshold


def test_a_price_rise_is_detected_on_the_features_it_moved(
    splits: tuple[pd.DataFrame, pd.DataFrame], profile: ModelDriftProfile
) -> None:
    metrics, clock = ServiceMetrics(), Clock()
    live = monitor(profile, metrics, window=1000, clock=clock)
    live.add(customers(splits[1].head(1000)))
    assert live.refresh() is not None
    assert gauge(metrics, "churn_drift_detected") == 0
    shifted = price_rise(splits[1].tail(1000), PRICE_RISE, np.random.default_rng(0))
    live.add(customers(shifted))
    clock.now += live.interval_s
    result = live.refresh()
    assert result is not None
    assert result.drift
    assert gauge(metrics, "churn_drift_detected") == 1
    assert gauge(metrics, "churn_drift_window_samples") == 1000  # only the shifted ones
    threshold = profile.params.psi_threshold
    for name in ("MonthlyCharges", "Contract"):
        psi = gauge(metrics, "churn_feature_drift", feature=name)
        assert psi is not None and psi >= threshold, name
    assert {"MonthlyCharges", "Contract"} <= set(result.drifted_features)


def test_the_comparison_is_cached_for_the_interval(
    splits: tuple[pd.DataFrame, pd.DataFrame], profile: ModelDriftProfile
) -> None:
    metrics, clock = ServiceMetrics(), Clock()
    live = monitor(profile, metrics, interval_s=10, clock=clock)
    live.add(customers(splits[1].head(600)))
    first = live.refresh()
    live.add(customers(splits[1].head(100)))
    clock.now = 9.9
    assert live.refresh() is first
    assert gauge(metrics, "churn_drift_window_samples") == 600
    clock.now = 10
    second = live.refresh()
    assert second is not first and second is not None
    assert second.current_rows == 700
    assert gauge(metrics, "churn_drift_window_samples") == 700


def test_verdict_changes_are_logged(
    splits: tuple[pd.DataFrame, pd.DataFrame],
    profile: ModelDriftProfile,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    live = monitor(
        profile, ServiceMetrics(), window=500, min_samples=500, interval_s=1, clock=clock
    )
    caplog.set_level(logging.INFO, logger=drift_monitor.__name__)
    live.add(customers(splits[1].head(500)))
    live.refresh()
    clock.now += 1
    live.refresh()  # the same verdict: not logged again
    live.add(customers(price_rise(splits[1].head(500), PRICE_RISE, np.random.default_rng(1))))
    clock.now += 1
    live.refresh()
    logged = [(r.levelname, r.getMessage().split(":")[1].strip()) for r in caplog.records]
    assert logged == [("INFO", "NO DRIFT"), ("WARNING", "DRIFT")]


def test_a_failing_comparison_leaves_no_verdict_and_metrics_still_answer(
    splits: tuple[pd.DataFrame, pd.DataFrame],
    profile: ModelDriftProfile,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    metrics, clock = ServiceMetrics(), Clock()
    live = monitor(profile, metrics, clock=clock)
    live.add(customers(splits[1].head(600)))
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
    splits: tuple[pd.DataFrame, pd.DataFrame], profile: ModelDriftProfile
) -> None:
    """When the served model changes, the old model's PSI must not linger."""
    metrics = ServiceMetrics()
    old = monitor(profile, metrics)
    old.add(customers(splits[1].head(600)))
    old.refresh()
    assert gauge(metrics, "churn_feature_drift", feature="tenure") is not None
    monitor(profile, metrics)
    assert gauge(metrics, "churn_feature_drift", feature="tenure") is None
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
from churn.drift import ModelDriftProfile
from churn.serving.drift_monitor import DriftMonitor
from churn.serving.middleware import ServiceMetrics
from churn.serving.schemas import EXAMPLE, Customer
profile = ModelDriftProfile.model_validate_json(Path({str(path)!r}).read_bytes())
metrics = ServiceMetrics()
live = DriftMonitor(profile, metrics, window=100, min_samples=100, interval_s=1)
live.add([Customer.model_validate(EXAMPLE)] * 100)
result = live.refresh()
print(json.dumps({{"drift": result.drift, "heavy": sorted(
    m for m in ("pandas", "scipy", "matplotlib", "sklearn") if m in sys.modules)}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    # 100 copies of one customer: every feature sits in a single bin, so it drifts.
    assert json.loads(done.stdout) == {"drift": True, "heavy": []}


# --- the profile on disk: written by train, checked by the loader -------------------


@pytest.fixture(scope="module")
def model_dir(small_model_dir: Path) -> Path:
    """A model trained on the 32-row fixture, written as `train` writes it."""
    return small_model_dir


def test_train_writes_the_profile_and_its_hash_and_the_loader_reads_it(
    model_dir: Path, params: Params
) -> None:
    card = ModelCard.read(model_dir / CARD_FILE)
    assert card.drift_profile_sha256 == file_sha256(model_dir / DRIFT_PROFILE_FILE)
    loaded = loader.load_directory(model_dir, version="1", source="test")
    assert loaded.drift_profile is not None
    assert loaded.drift_profile.params == params.drift
    assert loaded.drift_profile.reference.rows == 32


def copy_model(model_dir: Path, destination: Path) -> Path:
    destination.mkdir()
    for path in model_dir.iterdir():
        (destination / path.name).write_bytes(path.read_bytes())
    return destination


def test_a_missing_profile_turns_live_drift_off(
    model_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = copy_model(model_dir, tmp_path / "model")
    (directory / DRIFT_PROFILE_FILE).unlink()
    card = ModelCard.read(directory / CARD_FILE)
    assert loader.load_drift_profile(directory, card) is None
    assert "not found although the model card lists it" in caplog.text
    caplog.clear()
    older = replace(card, drift_profile_sha256=None)  # a model from before drift profiles
    assert loader.load_drift_profile(directory, older) is None
    assert caplog.text == ""


def test_a_profile_that_is_not_the_models_is_refused(model_dir: Path, tmp_path: Path) -> None:
    directory = copy_model(model_dir, tmp_path / "model")
    path = directory / DRIFT_PROFILE_FILE
    data = json.loads(path.read_text())
    data["params"]["psi_threshold"] = 0.5
    path.write_text(json.dumps(data))
    card = ModelCard.read(directory / CARD_FILE)
    with pytest.raises(ModelError, match="does not match the card's"):
        loader.load_drift_profile(directory, card)
    unchecked = replace(card, drift_profile_sha256=None)
    assert loader.load_drift_profile(directory, unchecked) is not None
    data["reference"]["features"][-1]["levels"][0] = "Cash"
    path.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="the contract lists"):
        loader.load_drift_profile(directory, unchecked)
    path.write_text("{}")
    with pytest.raises(ModelError, match="not a drift profile"):
        loader.load_drift_profile(directory, unchecked)
