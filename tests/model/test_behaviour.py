"""Tests of the default model, trained as the pipeline trains it, for any domain.

Minimum quality: every held-out metric clears its limit in params.yaml's gate.
Reproducibility: the same data and parameters give the same model.
The domain's "weaker" parameters give a model the gate refuses.
Behaviour particular to one data set (directional, invariance) lives with the
domain room: ``src/churn/domain/tests/``.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from churn.core.data import clean, features
from churn.core.domain import Domain
from churn.core.params import Params, TrainParams
from churn.pipeline import evaluate, prepare, train
from churn.release.gate import check_gate
from tests.support.params import overridden


@dataclass(frozen=True)
class Trained:
    pipeline: Pipeline
    cv: dict[str, float]
    train: pd.DataFrame
    test: pd.DataFrame


@pytest.fixture(scope="module")
def trained(raw_real: pd.DataFrame, params: Params, domain: Domain) -> Trained:
    train_split, test_split = prepare.run(raw_real, params.prepare, domain)
    # Round-trip through the same cleaning the stages apply to the CSV files.
    train_split, test_split = clean(train_split, domain), clean(test_split, domain)
    pipeline, cv = train.run(train_split, params.train, domain.contract)
    return Trained(pipeline, cv, train_split, test_split)


def _metrics(
    pipeline: Pipeline, frame: pd.DataFrame, params: Params, domain: Domain
) -> dict[str, float]:
    return evaluate.run(
        pipeline,
        frame,
        threshold=params.train.threshold,
        params=params.evaluate,
        seed=params.train.seed,
        contract=domain.contract,
    ).metrics


def _trained_with(train_params: TrainParams, trained: Trained, domain: Domain) -> Pipeline:
    pipeline, _ = train.run(trained.train, train_params, domain.contract)
    return pipeline


def test_minimum_quality_on_the_held_out_split(
    trained: Trained, params: Params, domain: Domain
) -> None:
    metrics = _metrics(trained.pipeline, trained.test, params, domain)
    result = check_gate(metrics, None, params.gate)
    assert result.passed, result.render()
    if "roc_auc" in params.gate:  # the training split's cross-validation agrees
        assert params.gate["roc_auc"].within_limit(trained.cv["cv_roc_auc"]), trained.cv


def test_training_is_reproducible(trained: Trained, params: Params, domain: Domain) -> None:
    again, cv = train.run(trained.train, params.train, domain.contract)
    assert cv == trained.cv
    x = features(trained.test, domain.contract)
    np.testing.assert_array_equal(
        again.predict_proba(x)[:, 1], trained.pipeline.predict_proba(x)[:, 1]
    )


def test_gradient_boosting_option_trains_a_model_with_signal(
    trained: Trained, params: Params, domain: Domain
) -> None:
    """The other estimator params.yaml offers works on any domain. (Whether it also
    clears *this* gate is the data's business, not the machinery's.)"""
    hgb = params.train.model_copy(update={"estimator": "hist_gradient_boosting", "cv_folds": 2})
    metrics = _metrics(_trained_with(hgb, trained, domain), trained.test, params, domain)
    assert metrics["roc_auc"] > 0.5
    assert 0 <= metrics["brier"] < 0.25  # better than a constant 0.5


def test_the_domains_weaker_parameters_give_a_model_the_gate_refuses(
    trained: Trained, params: Params, domain: Domain
) -> None:
    """The registry's integration test relies on it to show a refused promotion."""
    assert domain.scenarios is not None and domain.scenarios.weaker_train
    weaker = overridden(params.train, domain.scenarios.weaker_train)
    assert weaker != params.train
    baseline = _metrics(trained.pipeline, trained.test, params, domain)
    metrics = _metrics(_trained_with(weaker, trained, domain), trained.test, params, domain)
    result = check_gate(metrics, baseline, params.gate, baseline_name="the default model")
    assert not result.passed, result.render()
    assert any("worse than the baseline" in problem for problem in result.problems())
