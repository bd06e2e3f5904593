"""Load the served model once, verify it, and check that it answers as trained.

A model is served only if its ONNX file matches the hash in its card and
reproduces the scores the fitted pipeline gave the card's reference rows;
otherwise loading raises `ModelError` and the service does not start. Its
drift profile is optional (without one, the live drift metrics are off), but
one that is present must match the card's hash and the contract.

The contract is an argument (the app's), never looked up here: a model is
checked against the records the service will be sent.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError

from churn.core.artifacts import (
    CARD_FILE,
    DRIFT_PROFILE_FILE,
    ONNX_FILE,
    RUN_FILE,
    SERVING_ARTIFACTS,
    ModelCard,
    RunRecord,
    file_sha256,
    parse_model_uri,
)
from churn.core.errors import ModelError, first_line
from churn.monitoring.drift import ModelDriftProfile
from churn.serving.onnx_model import OnnxModel
from churn.serving.settings import ServingSettings

if TYPE_CHECKING:
    from churn.core.contract import Contract

log = logging.getLogger(__name__)
SELF_CHECK_TOLERANCE = 1e-5
UNREGISTERED = "unregistered"


@dataclass(frozen=True)
class LoadedModel:
    model: OnnxModel
    card: ModelCard
    version: str
    source: str
    drift_profile: ModelDriftProfile | None = None  # None: live drift metrics are off

    @property
    def sha256(self) -> str:
        return self.card.onnx_sha256


def load(settings: ServingSettings, contract: Contract) -> LoadedModel:
    """The model the settings name (a directory or a registry URI), checked against
    ``contract``."""
    if settings.model_uri is None:
        directory = settings.model_dir
        record = RunRecord.read_for(directory / RUN_FILE, ModelCard.read(directory / CARD_FILE))
        version = UNREGISTERED if record is None else record.version
        return load_directory(directory, contract, version=version, source=str(directory))
    with tempfile.TemporaryDirectory(prefix="churn-model-") as tmp:
        directory, version = _download(settings.model_uri, Path(tmp))
        return load_directory(directory, contract, version=version, source=settings.model_uri)


def load_directory(
    directory: Path, contract: Contract, *, version: str, source: str
) -> LoadedModel:
    """A model directory as `train` writes it; `ModelError` unless it is whole and sound."""
    card = ModelCard.read(directory / CARD_FILE)
    if list(card.features) != list(contract.feature_names):
        raise ModelError(
            f"{directory}: the model was trained on features {list(card.features)}, "
            f"the contract now lists {list(contract.feature_names)}: retrain it"
        )
    path = directory / ONNX_FILE
    if not path.is_file():
        raise ModelError(f"{path}: not found")
    if (actual := file_sha256(path)) != card.onnx_sha256:
        raise ModelError(
            f"{path}: SHA-256 {actual[:12]}… does not match the card's {card.onnx_sha256[:12]}…"
        )
    drift_profile = load_drift_profile(directory, card, contract)
    loaded = LoadedModel(
        OnnxModel(path.read_bytes(), contract), card, version, source, drift_profile
    )
    self_check(loaded)
    log.info("serving model %s (v%s, sha256 %s…)", source, version, loaded.sha256[:12])
    return loaded


def load_drift_profile(
    directory: Path, card: ModelCard, contract: Contract
) -> ModelDriftProfile | None:
    """The model's drift profile, or None if it has none (an older model, a partial copy).

    A profile that is there must be the one trained with the model (its hash
    in the card) and bin the contract's features: otherwise `ModelError`.
    """
    path = directory / DRIFT_PROFILE_FILE
    if not path.is_file():
        if card.drift_profile_sha256 is not None:
            log.warning("%s: not found although the model card lists it", path)
        return None
    expected = card.drift_profile_sha256
    if expected is not None and (actual := file_sha256(path)) != expected:
        raise ModelError(
            f"{path}: SHA-256 {actual[:12]}… does not match the card's {expected[:12]}…"
        )
    try:
        profile = ModelDriftProfile.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ModelError(f"{path}: not a drift profile ({where}: {first['msg']})") from None
    features = {feature.name: feature for feature in profile.reference.features}
    if set(features) != set(contract.feature_names):
        raise ModelError(
            f"{path}: profiles the features {sorted(features)}, "
            f"the contract lists {sorted(contract.feature_names)}"
        )
    # The service counts validated requests into these bins: a level the
    # profile lacks would fail the request, not just the drift metrics.
    for numeric in contract.numeric:
        if features[numeric.name].kind != "numeric":
            raise ModelError(f"{path}: {numeric.name} is profiled as categorical")
    for categorical in contract.categorical:
        if (levels := features[categorical.name].levels) != categorical.levels:
            raise ModelError(
                f"{path}: {categorical.name} is profiled with levels {list(levels)}, "
                f"the contract lists {list(categorical.levels)}"
            )
    return profile


def self_check(loaded: LoadedModel) -> None:
    """Score the card's reference rows and compare with the trained pipeline's scores."""
    rows: list[dict[str, Any]] = loaded.card.reference.get("rows", [])
    expected = np.asarray(loaded.card.reference.get("scores", []), dtype=np.float64)
    if not rows or len(rows) != len(expected):
        raise ModelError("model card has no reference rows to self-check against")
    onnx = loaded.model
    columns = {name: [row[name] for row in rows] for name in (*onnx.numeric, *onnx.categorical)}
    difference = float(np.max(np.abs(onnx.predict_columns(columns) - expected)))
    if difference > SELF_CHECK_TOLERANCE:
        raise ModelError(f"self-check failed: scores differ from training by {difference:.2e}")


def _download(model_uri: str, destination: Path) -> tuple[Path, str]:
    """Fetch the serving bundle of ``models:/<name>@<alias>`` from the MLflow registry."""
    try:
        import mlflow
        from mlflow.exceptions import MlflowException
    except ImportError:
        raise ModelError(f"{model_uri}: loading from the registry needs mlflow-skinny") from None
    name, alias = parse_model_uri(model_uri)
    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, alias)
        path = mlflow.artifacts.download_artifacts(
            run_id=version.run_id, artifact_path=SERVING_ARTIFACTS, dst_path=str(destination)
        )
    except MlflowException as exc:
        raise ModelError(f"{model_uri}: {first_line(exc)}") from None
    return Path(path), str(version.version)
