"""The model as one pipeline built from the contract, saved with skops and checked by hash."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from churn.core.artifacts import CARD_FILE, MODEL_FILE, ModelCard
from churn.core.contract import MISSING_LEVEL, Contract
from churn.core.data import clean, features, label
from churn.core.domain import Domain
from churn.core.errors import ModelError
from churn.core.params import Params
from churn.pipeline.model import ONNX_TOLERANCE, build_pipeline, load_model, save_model
from tests.support.bad_data import unknown
from tests.support.models import ESTIMATORS, fit_and_write


def _fit_and_save(
    params: Params, frame: pd.DataFrame, model_dir: Path, estimator: str, contract: Contract
) -> Pipeline:
    train = params.train.model_copy(update={"estimator": estimator})
    pipeline = build_pipeline(train, contract)
    pipeline.fit(features(frame, contract), label(frame, contract))
    sha = save_model(pipeline, model_dir)
    ModelCard(
        sha256=sha,
        onnx_sha256="",
        onnx_max_abs_diff=0.0,
        estimator=estimator,
        threshold=train.threshold,
        params=train.model_dump(),
        features=list(contract.feature_names),
        data={},
        metrics={},
        reference={},
    ).write(model_dir / CARD_FILE)
    return pipeline


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_round_trip_gives_identical_predictions(
    params: Params, raw_sample: pd.DataFrame, domain: Domain, tmp_path: Path, estimator: str
) -> None:
    frame, contract = clean(raw_sample, domain), domain.contract
    fitted = _fit_and_save(params, frame, tmp_path, estimator, contract)
    pipeline, card = load_model(tmp_path)
    assert card.estimator == estimator
    x = features(frame, contract)
    score = pipeline.predict_proba(x)[:, 1]
    assert ((score >= 0) & (score <= 1)).all()
    np.testing.assert_array_equal(score, fitted.predict_proba(x)[:, 1])


def test_pipeline_uses_contract_columns_and_levels(params: Params, contract: Contract) -> None:
    pipeline = build_pipeline(params.train, contract)
    preprocess = pipeline.named_steps["preprocess"]
    transformers = {name: cols for name, _, cols in preprocess.transformers}
    # Numbers that may be blank go through an imputer; the others as before.
    imputed = [c.name for c in contract.numeric if c.nullable]
    assert transformers["numeric"] == [c.name for c in contract.numeric if not c.nullable]
    assert transformers.get("numeric_imputed", []) == imputed
    assert transformers["categorical"] == list(contract.categorical_names)
    encoder = dict((name, step) for name, step, _ in preprocess.transformers)["categorical"]
    assert encoder.categories == [
        [*c.levels, MISSING_LEVEL] if c.nullable else list(c.levels) for c in contract.categorical
    ]


def test_an_unknown_level_is_refused_not_guessed(
    params: Params, raw_sample: pd.DataFrame, domain: Domain, tmp_path: Path
) -> None:
    frame, contract = clean(raw_sample, domain), domain.contract
    pipeline = _fit_and_save(params, frame, tmp_path, "logistic_regression", contract)
    column = contract.categorical[0]
    x = features(frame, contract).head(1).assign(**{column.name: unknown(column.levels, "new")})
    with pytest.raises(ValueError, match="unknown categor"):
        pipeline.predict_proba(x)


def test_a_tampered_model_is_refused(
    params: Params, raw_sample: pd.DataFrame, domain: Domain, tmp_path: Path
) -> None:
    frame = clean(raw_sample, domain)
    _fit_and_save(params, frame, tmp_path, "logistic_regression", domain.contract)
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


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_training_twice_writes_the_same_bytes(
    params: Params, domain: Domain, sample_csv: Path, tmp_path: Path, estimator: str
) -> None:
    """skops names entries after object ids and skl2onnx names graphs at random:
    `save_model` and `export_onnx` make both canonical, so a DVC hash names a recipe."""
    from churn.core.data import read_csv

    frame = clean(read_csv(sample_csv), domain)
    train_params = params.train.model_copy(update={"cv_folds": 2, "estimator": estimator})
    written = []
    for run in ("first", "second"):
        directory = tmp_path / run
        fit_and_write(frame, params, domain, directory, train_params)
        written.append({path.name: path.read_bytes() for path in sorted(directory.iterdir())})

    assert written[0].keys() == written[1].keys()
    for name, content in written[0].items():
        assert content == written[1][name], f"{name} differs between two trainings"
    card = ModelCard.read(tmp_path / "first" / CARD_FILE)
    assert card.estimator == estimator
    assert card.onnx_max_abs_diff <= ONNX_TOLERANCE


# Two string-hash seeds under which skl2onnx listed its opsets in other orders.
HASH_SEEDS = ("0", "11")
EXPORT = """
import hashlib, pathlib, sys
import skops.io as sio
from churn.core.domain import load_domain
from churn.pipeline.model import export_onnx, trusted_types
path = pathlib.Path(sys.argv[1])
pipeline = sio.load(path, trusted=trusted_types(path))
print(hashlib.sha256(export_onnx(pipeline, load_domain().contract)).hexdigest())
"""


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_the_onnx_export_does_not_depend_on_the_string_hash_seed(
    params: Params, raw_sample: pd.DataFrame, domain: Domain, tmp_path: Path, estimator: str
) -> None:
    """Each `churn train` is a new process with a new ``PYTHONHASHSEED``: the
    export must not follow the iteration order of a set of strings."""
    frame = clean(raw_sample, domain)
    _fit_and_save(params, frame, tmp_path, estimator, domain.contract)
    digests = {
        seed: subprocess.run(
            [sys.executable, "-c", EXPORT, str(tmp_path / MODEL_FILE)],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in HASH_SEEDS
    }
    assert len(set(digests.values())) == 1, digests


def test_a_canonical_model_file_loads_and_predicts_like_the_original(
    params: Params, raw_sample: pd.DataFrame, domain: Domain, tmp_path: Path
) -> None:
    import skops.io as sio

    from churn.pipeline.model import canonical_skops, trusted_types

    frame = clean(raw_sample, domain)
    pipeline = _fit_and_save(params, frame, tmp_path, "logistic_regression", domain.contract)
    raw = tmp_path / "raw.skops"
    sio.dump(pipeline, raw)
    canonical = canonical_skops(raw.read_bytes())

    assert canonical != raw.read_bytes()  # the ids really were renumbered
    assert canonical_skops(canonical) == canonical
    loaded, _ = load_model(tmp_path)
    x = features(frame, domain.contract)
    np.testing.assert_array_equal(loaded.predict_proba(x), pipeline.predict_proba(x))
    assert trusted_types(tmp_path / MODEL_FILE) == trusted_types(raw)
