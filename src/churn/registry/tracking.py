"""Experiment tracking and model registry with MLflow.

Where runs go is MLflow's own setting, ``MLFLOW_TRACKING_URI``: a tracking
server when set, otherwise a SQLite file in the working directory (MLflow 3
no longer accepts the old ``./mlruns`` file store as a tracking backend).
The experiment and registered-model names are runtime settings, read from
``CHURN_EXPERIMENT`` and ``CHURN_REGISTERED_MODEL``; ``CHURN_TRACKING_FALLBACK``
says what to do when the tracking server cannot be reached (fail, or log to
the local SQLite store with a warning).

Every run and registered version carries lineage tags (`lineage`): the git
commit and whether the work tree had changes, the SHA-256 of ``dvc.lock`` and
the training file's MD5 as DVC records it, so a model leads back to its code
and data.

``mlflow`` takes seconds to import, so only the functions that log import it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn.core.artifacts import (
    CARD_FILE,
    DRIFT_PROFILE_FILE,
    MODEL_FILE,
    ONNX_FILE,
    SERVING_ARTIFACTS,
    RunRecord,
)
from churn.core.errors import TrackingError, first_line
from churn.pipeline.model import LIBRARIES as MODEL_LIBRARIES

if TYPE_CHECKING:
    import pandas as pd
    from mlflow.models import ModelSignature
    from sklearn.pipeline import Pipeline

    from churn.core.artifacts import ModelCard
    from churn.core.contract import Contract

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# Registry aliases (MLflow's replacement for the deprecated stages); see churn.registry.champion.
CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous_champion"
# The connect check before training: one retry and 5 s per attempt, instead of
# MLflow's defaults (7 retries with exponential backoff, 120 s timeout), which
# keep an unreachable server busy for minutes. Only the check is bounded; the
# logging after training keeps MLflow's (or the user's) retry settings.
CONNECT_CHECK_ENV = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}
log = logging.getLogger(__name__)


class TrackingSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CHURN_", frozen=True)

    experiment: str = "churn"
    registered_model: str = "churn-classifier"
    tracking_fallback: Literal["none", "local"] = Field(
        default="none",
        description=(
            "When the tracking server is unreachable: `none` fails the run before "
            f"training; `local` warns and logs to {DEFAULT_TRACKING_URI} instead."
        ),
    )


def load_settings() -> TrackingSettings:
    """`TrackingSettings` from the environment; a bad value is a `TrackingError`."""
    from pydantic import ValidationError

    try:
        return TrackingSettings()
    except ValidationError as exc:
        problems = "; ".join(f"CHURN_{str(e['loc'][0]).upper()}: {e['msg']}" for e in exc.errors())
        raise TrackingError(f"invalid tracking settings: {problems}") from None


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def quiet_mlflow() -> None:
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # A retried request is not news; the error after the last retry is.
    logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    # The uv-made venv has no pip; MLflow warns that it cannot pin pip in the
    # model's conda.yaml. We pin the model's requirements ourselves.
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)


def signature(contract: Contract) -> ModelSignature:
    """The model's signature, derived from the data contract.

    Input: the contract's feature columns (numbers as doubles, levels as
    strings). Output: ``predict_proba``'s two columns, P(negative) and P(positive).
    """
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    columns: list[ColSpec | TensorSpec] = [
        ColSpec("double", name) for name in contract.numeric_names
    ]
    columns += [ColSpec("string", name) for name in contract.categorical_names]
    inputs = Schema(columns)
    outputs = Schema([TensorSpec(np.dtype("float64"), (-1, 2))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def model_requirements() -> list[str]:
    """The packages a loaded model needs, pinned to the versions that trained it."""
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("mlflow", *MODEL_LIBRARIES)]


@contextmanager
def bounded_requests() -> Iterator[None]:
    """MLflow's HTTP retries and timeout bounded to `CONNECT_CHECK_ENV` within the block.

    MLflow reads these variables on every request, so setting them around one
    call is enough; the previous values are restored afterwards.
    """
    saved = {name: os.environ.get(name) for name in CONNECT_CHECK_ENV}
    os.environ.update(CONNECT_CHECK_ENV)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def is_remote(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def unreachable(exc: BaseException) -> str | None:
    """Why the server could not be reached, or None if it answered (with an error)."""
    import requests

    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    if any(isinstance(e, requests.exceptions.Timeout) for e in seen):
        return "no answer (timed out)"
    if any(isinstance(e, requests.exceptions.ConnectionError) for e in seen):
        return "unreachable"
    return None


def failure_reason(exc: BaseException) -> str:
    """One line on why a request to the tracking store failed."""
    return unreachable(exc) or first_line(exc)


def start(settings: TrackingSettings) -> str:
    """Connect to the tracking store and select the experiment; returns the URI in use.

    Called before training, so an unreachable server fails the run within
    seconds, before any time is spent fitting. With
    ``CHURN_TRACKING_FALLBACK=local`` an unreachable *server* is replaced by
    the local SQLite store, with a warning; a server that answers with an
    error (wrong credentials, a 5xx) still fails the run.
    """
    quiet_mlflow()
    uri = tracking_uri()
    try:
        _select_experiment(uri, settings.experiment)
    except Exception as exc:  # MLflow raises MlflowException, requests' and OS errors
        reason, down = failure_reason(exc), is_remote(uri) and unreachable(exc) is not None
    else:
        return uri
    if not down:
        raise TrackingError(f"MLflow tracking store {uri}: {reason}")
    if settings.tracking_fallback != "local":
        raise TrackingError(
            f"MLflow tracking server {uri}: {reason}. Start it (make mlflow-server), "
            "correct MLFLOW_TRACKING_URI, or set CHURN_TRACKING_FALLBACK=local "
            f"to log to {DEFAULT_TRACKING_URI}"
        )
    log.warning(
        "MLflow tracking server %s: %s; CHURN_TRACKING_FALLBACK=local: logging this run "
        "and registering its model in %s instead",
        uri,
        reason,
        DEFAULT_TRACKING_URI,
    )
    try:
        _select_experiment(DEFAULT_TRACKING_URI, settings.experiment)
    except Exception as exc:
        raise TrackingError(
            f"MLflow tracking store {DEFAULT_TRACKING_URI}: {failure_reason(exc)}"
        ) from None
    return DEFAULT_TRACKING_URI


def _select_experiment(uri: str, experiment: str) -> None:
    import mlflow

    mlflow.set_tracking_uri(uri)
    with bounded_requests():
        mlflow.set_experiment(experiment)


def lineage(dvc_lock: Path | None, train_path: Path, cwd: Path | None = None) -> dict[str, str]:
    """Tags that lead from a model back to its code and data.

    - ``git_commit``, ``git_dirty``: ``HEAD`` of the repository in ``cwd`` and
      whether tracked or new files differ from it (omitted outside git);
    - ``dvc_lock_sha256``: ``dvc.lock`` as it was when training started. It pins
      the upstream stages (prepare, validate); DVC rewrites the ``train`` entry
      only after this stage, so that entry describes the previous model;
    - ``train_data_md5``: the training file's MD5, the hash DVC writes in
      ``dvc.lock`` and the key of the file in the DVC cache and remotes.
    """
    tags: dict[str, str] = {}
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        log.warning("not a git repository: the run is not linked to a commit")
    else:
        status = _git(["status", "--porcelain"], cwd)
        tags["git_commit"] = commit
        tags["git_dirty"] = "true" if status else "false"
    if dvc_lock is not None and dvc_lock.is_file():
        tags["dvc_lock_sha256"] = hashlib.sha256(dvc_lock.read_bytes()).hexdigest()
    tags["train_data_md5"] = _md5(train_path)
    return tags


def _git(args: list[str], cwd: Path | None) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def log_training(
    pipeline: Pipeline,
    *,
    example: pd.DataFrame,
    card: ModelCard,
    model_dir: Path,
    settings: TrackingSettings,
    uri: str,
    tags: Mapping[str, str],
    contract: Contract,
) -> RunRecord:
    """Log params, CV metrics, the model and its card; register a new `challenger` version.

    ``uri`` is the store `start` connected to; ``tags`` (`lineage`) go on the
    run and on the registered version.
    """
    import mlflow

    from churn.pipeline.model import trusted_types

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(settings.experiment)
    tags = {
        "model_sha256": card.sha256,
        "train_data_sha256": card.data["train_sha256"],
        **tags,
    }
    params: dict[str, Any] = {"estimator": card.estimator}
    params.update({f"{card.estimator}.{k}": v for k, v in card.params[card.estimator].items()})
    params.update({k: v for k, v in card.params.items() if not isinstance(v, dict)})
    with mlflow.start_run() as run:
        mlflow.log_params(params)
        mlflow.log_metrics(card.metrics)
        mlflow.set_tags(tags)
        info = mlflow.sklearn.log_model(
            pipeline,
            name="model",
            signature=signature(contract),
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
        # registry: `runs:/<run_id>/serving` holds the ONNX model, its card and
        # the drift profile its live drift metrics compare traffic with.
        for name in (ONNX_FILE, CARD_FILE, DRIFT_PROFILE_FILE):
            mlflow.log_artifact(str(model_dir / name), artifact_path=SERVING_ARTIFACTS)
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_model_version_tag(settings.registered_model, version, key, value)
    client.set_registered_model_alias(settings.registered_model, CHALLENGER, version)
    log.info(
        "logged run %s, registered %s v%s as @%s",
        run.info.run_id,
        settings.registered_model,
        version,
        CHALLENGER,
    )
    return RunRecord(
        tracking_uri=uri,
        experiment=settings.experiment,
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        registered_model=settings.registered_model,
        version=version,
        model_sha256=card.sha256,
    )


def log_evaluation(record: RunRecord, metrics: dict[str, float], plots_dir: Path) -> None:
    """Add held-out metrics and plot images to the run that trained the model.

    If that run is gone (a deleted local store, another tracking server), the
    evaluation itself still stands: warn and leave the tracking store alone.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    quiet_mlflow()
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
