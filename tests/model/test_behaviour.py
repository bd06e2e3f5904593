"""Behavioural tests of the default model, trained as the pipeline trains it.

Directional: a longer commitment should lower the predicted risk.
Invariance: attributes that should not matter barely move it.
Minimum quality: the held-out ROC AUC clears the gate in params.yaml.
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from churn import evaluate, train
from churn.data import clean, features
from churn.params import Params
from churn.prepare import run as prepare


@dataclass(frozen=True)
class Trained:
    pipeline: Pipeline
    cv: dict[str, float]
    train: pd.DataFrame
    test: pd.DataFrame


@pytest.fixture(scope="module")
def trained(raw_real: pd.DataFrame, params: Params) -> Trained:
    train_split, test_split = prepare(raw_real, params.prepare)
    # Round-trip through the same cleaning the stages apply to the CSV files.
    train_split, test_split = clean(train_split), clean(test_split)
    pipeline, cv = train.run(train_split, params.train)
    return Trained(pipeline, cv, train_split, test_split)


def _evaluate(pipeline: Pipeline, frame: pd.DataFrame, params: Params) -> evaluate.Evaluation:
    return evaluate.run(
        pipeline,
        frame,
        threshold=params.train.threshold,
        params=params.evaluate,
        seed=params.train.seed,
    )


def _risk(pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    risk: np.ndarray = pipeline.predict_proba(features(frame))[:, 1]
    return risk


def test_minimum_quality_on_the_held_out_split(trained: Trained, params: Params) -> None:
    result = _evaluate(trained.pipeline, trained.test, params)
    for metric, gate in params.gate.items():
        assert gate.within_limit(result.metrics[metric]), (metric, result.metrics[metric])
    assert trained.cv["cv_roc_auc"] >= params.gate["roc_auc"].limit


def test_a_two_year_contract_lowers_the_risk(trained: Trained) -> None:
    monthly = trained.test[trained.test["Contract"].eq("Month-to-month")]
    assert len(monthly) > 500
    before = _risk(trained.pipeline, monthly)
    after = _risk(trained.pipeline, monthly.assign(Contract="Two year"))
    assert (after < before).mean() >= 0.95
    assert np.median(before - after) > 0.1


def test_gender_barely_moves_the_risk(trained: Trained) -> None:
    flipped = trained.test.assign(
        gender=trained.test["gender"].map({"Female": "Male", "Male": "Female"})
    )
    change = np.abs(_risk(trained.pipeline, flipped) - _risk(trained.pipeline, trained.test))
    assert change.max() < 0.03


def test_training_is_reproducible(trained: Trained, params: Params) -> None:
    again, cv = train.run(trained.train, params.train)
    assert cv == trained.cv
    np.testing.assert_array_equal(_risk(again, trained.test), _risk(trained.pipeline, trained.test))


def test_gradient_boosting_option_also_clears_the_gate(trained: Trained, params: Params) -> None:
    hgb = params.train.model_copy(update={"estimator": "hist_gradient_boosting", "cv_folds": 2})
    pipeline, _ = train.run(trained.train, hgb)
    result = _evaluate(pipeline, trained.test, params)
    assert params.gate["roc_auc"].within_limit(result.metrics["roc_auc"])
