"""Experiment tracking and model registry with MLflow.

Where runs go is MLflow's own setting, ``MLFLOW_TRACKING_URI``: a tracking
server when set, otherwise a SQLite file in the working directory (MLflow 3
no longer accepts the old ``./mlruns`` file store as a tracking backend).
The experiment and registered-model names are runtime settings, read from
``CHURN_EXPERIMENT`` and ``CHURN_REGISTERED_MODEL``.

``mlflow`` takes seconds to import, so only the functions that log import it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from churn import contract
from churn.artifacts import CARD_FILE, MODEL_FILE, ONNX_FILE, SERVING_ARTIFACTS, RunRecord
from churn.errors import TrackingError
from churn.model import LIBRARIES as MODEL_LIBRARIES

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models import ModelSignature
    from sklearn.pipeline import Pipeline

    from churn.artifacts import ModelCard

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
log = logging.getLogger(__name__)


class TrackingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHURN_", frozen=True)

    experiment: str = "churn"
    registered_model: str = "churn-classifier"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def _quiet_mlflow() -> None:
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # The uv-made venv has no pip; MLflow warns that it cannot pin pip in the
    # model's conda.yaml. We pin the model's requirements ourselves.
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)


def signature() -> ModelSignature:
    """The model's signature, derived from the data contract.

    Input: the contract's feature columns (numbers as doubles, levels as
    strings). Output: ``predict_proba``'s two columns, P(stay) and P(churn).
    """
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    columns: list[ColSpec | TensorSpec] = [
        ColSpec("double", name) for name in contract.numeric_names()
    ]
    columns += [ColSpec("string", name) for name in contract.categorical_names()]
    inputs = Schema(columns)
    outputs = Schema([TensorSpec(np.dtype("float64"), (-1, 2))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def model_requirements() -> list[str]:
    """The packages a loaded model needs, pinned to the versions that trained it."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", *MODEL_LIBRARIES)]


def start(settings: TrackingSettings) -> str:
    """Connect to the tracking store and select the experiment; returns the URI.

    Called before training, so an unreachable server fails the run before
    any time is spent fitting.
    """
    import mlflow

    _quiet_mlflow()
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    try:
        mlflow.set_experiment(settings.experiment)
    except Exception as exc:  # MLflow raises MlflowException, requests' and OS errors
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise TrackingError(f"MLflow tracking store {uri}: {reason}") from None
    return uri


def log_training(
    pipeline: Pipeline,
    *,
    example: pd.DataFrame,
    card: ModelCard,
    model_dir: Path,
    settings: TrackingSettings,
) -> RunRecord:
    """Log params, CV metrics, the model and its card; register a new version."""
    import mlflow

    from churn.model import trusted_types

    uri = start(settings)
    params: dict[str, Any] = {"estimator": card.estimator}
    params.update({f"{card.estimator}.{k}": v for k, v in card.params[card.estimator].items()})
    params.update({k: v for k, v in card.params.items() if not isinstance(v, dict)})
    with mlflow.start_run() as run:
        mlflow.log_params(params)
        mlflow.log_metrics(card.metrics)
        mlflow.set_tags(
            {"model_sha256": card.sha256, "train_data_sha256": card.data["train_sha256"]}
        )
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature(),
            input_example=example,
            registered_model_name=settings.registered_model,
            pyfunc_predict_fn="predict_proba",
            serialization_format="skops",
            skops_trusted_types=trusted_types(model_dir / MODEL_FILE),
            # Pinned from this environment: MLflow's own inference imports the
            # model in a subprocess and costs seconds on every training run.
            pip_requirements=model_requirements(),
        )
        # The serving bundle, so a service can load this version from the
        # registry: `runs:/<run_id>/serving` holds the ONNX model and its card.
        for name in (ONNX_FILE, CARD_FILE):
            mlflow.log_artifact(str(model_dir / name), artifact_path=SERVING_ARTIFACTS)
    version = str(info.registered_model_version)
    log.info(
        "logged run %s, registered %s v%s", run.info.run_id, settings.registered_model, version
    )
    return RunRecord(
        tracking_uri=uri,
        experiment=settings.experiment,
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        registered_model=settings.registered_model,
        version=version,
    )


def log_evaluation(record: RunRecord, metrics: dict[str, float], plots_dir: Path) -> None:
    """Add held-out metrics and plot images to the run that trained the model.

    If that run is gone (a deleted local store, another tracking server), the
    evaluation itself still stands: warn and leave the tracking store alone.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    _quiet_mlflow()
    mlflow.set_tracking_uri(record.tracking_uri)
    try:
        mlflow.get_run(record.run_id)
    except MlflowException:
        log.warning(
            "run %s is not in %s: test metrics not logged to MLflow (re-run train to log them)",
            record.run_id,
            record.tracking_uri,
        )
        return
    with mlflow.start_run(run_id=record.run_id):
        mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items()})
        mlflow.log_artifacts(str(plots_dir), artifact_path="plots")
