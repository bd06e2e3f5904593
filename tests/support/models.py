"""Real models for the tests: trained on the real split, written as `train` writes them."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from churn.core.params import TrainParams

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from churn.core.domain import Domain
    from churn.core.params import Params

# Every value of `train.estimator` params.yaml accepts: the tests that depend on
# the estimator run for each, so none of them ships untested.
ESTIMATORS: tuple[str, ...] = get_args(TrainParams.model_fields["estimator"].annotation)


@dataclass(frozen=True)
class TrainedModel:
    directory: Path
    pipeline: Pipeline
    test: pd.DataFrame  # the held-out split, clean (contract types)


def train_model(
    raw: pd.DataFrame,
    params: Params,
    domain: Domain,
    directory: Path,
    train_params: TrainParams | None = None,
) -> TrainedModel:
    """Split ``raw`` as `prepare` does, train on the training split (no MLflow) and
    write the model to ``directory``; ``train_params`` replaces ``params.train``."""
    from churn.pipeline import prepare

    train_split, test_split = prepare.run(raw, params.prepare, domain)
    pipeline = fit_and_write(train_split, params, domain, directory, train_params)
    return TrainedModel(directory, pipeline, test_split)


def fit_and_write(
    frame: pd.DataFrame,
    params: Params,
    domain: Domain,
    directory: Path,
    train_params: TrainParams | None = None,
) -> Pipeline:
    """`train.run` on the clean ``frame``, then `train.write_model` to ``directory``
    (skops, ONNX, card, drift profile; no MLflow); ``train_params`` replaces ``params.train``."""
    from churn.pipeline import train

    train_params = train_params or params.train
    pipeline, metrics = train.run(frame, train_params, domain.contract)
    train.write_model(
        pipeline,
        frame,
        directory,
        params=train_params,
        drift=params.drift,
        metrics=metrics,
        data={},
        contract=domain.contract,
    )
    return pipeline


def copy_model(source: Path, target: Path) -> Path:
    """A copy of a model directory, to break one file of it without touching the original."""
    shutil.copytree(source, target)
    return target
