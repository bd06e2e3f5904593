from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from churn import contract
from churn.artifacts import CARD_FILE, MODEL_FILE, ModelCard
from churn.data import clean, features, label
from churn.errors import ModelError
from churn.model import build_pipeline, load_model, save_model
from churn.params import Params


def _fit_and_save(params: Params, frame: pd.DataFrame, model_dir: Path, estimator: str) -> Pipeline:
    train = params.train.model_copy(update={"estimator": estimator})
    pipeline = build_pipeline(train).fit(features(frame), label(frame))
    sha = save_model(pipeline, model_dir)
    ModelCard(
        sha256=sha,
        onnx_sha256="",
        onnx_max_abs_diff=0.0,
        estimator=estimator,
        threshold=train.threshold,
        params=train.model_dump(),
        features=contract.feature_names(),
        data={},
        metrics={},
        reference={},
    ).write(model_dir / CARD_FILE)
    return pipeline


@pytest.mark.parametrize("estimator", ["logistic_regression", "hist_gradient_boosting"])
def test_round_trip_gives_identical_predictions(
    params: Params, raw_fixture: pd.DataFrame, tmp_path: Path, estimator: str
) -> None:
    frame = clean(raw_fixture)
    fitted = _fit_and_save(params, frame, tmp_path, estimator)
    pipeline, card = load_model(tmp_path)
    assert card.estimator == estimator
    score = pipeline.predict_proba(features(frame))[:, 1]
    assert ((score >= 0) & (score <= 1)).all()
    np.testing.assert_array_equal(score, fitted.predict_proba(features(frame))[:, 1])


def test_pipeline_uses_contract_columns_and_levels(params: Params) -> None:
    pipeline = build_pipeline(params.train)
    transformers = {name: cols for name, _, cols in pipeline.named_steps["preprocess"].transformers}
    assert transformers["numeric"] == contract.numeric_names()
    assert transformers["categorical"] == contract.categorical_names()


def test_a_tampered_model_is_refused(
    params: Params, raw_fixture: pd.DataFrame, tmp_path: Path
) -> None:
    _fit_and_save(params, clean(raw_fixture), tmp_path, "logistic_regression")
    with (tmp_path / MODEL_FILE).open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ModelError, match="does not match the card"):
        load_model(tmp_path)


def test_missing_model_or_card_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model_card\.json: not found"):
        load_model(tmp_path)
    (tmp_path / CARD_FILE).write_text("{not json")
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(tmp_path)
