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

import hashlib
import logging
import stat
import tempfile
from collections.abc import Iterator
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


class ModelPinError(ModelError):
    """The model is not the one ``CHURN_MODEL_SHA256`` pins."""


def load(settings: ServingSettings, contract: Contract) -> LoadedModel:
    """The model the settings name (a directory or a registry URI), checked against
    ``contract`` (and against ``CHURN_MODEL_SHA256``, when set)."""
    pinned = settings.model_sha256
    if settings.model_uri is None:
        directory = settings.model_dir
        _regular_files(directory, CARD_FILE, RUN_FILE)
        record = RunRecord.read_for(directory / RUN_FILE, ModelCard.read(directory / CARD_FILE))
        version = UNREGISTERED if record is None else record.version
        return load_directory(
            directory, contract, version=version, source=str(directory), pinned=pinned
        )
    with tempfile.TemporaryDirectory(prefix="churn-model-") as tmp:
        directory, version = _download(settings.model_uri, Path(tmp))
        return load_directory(
            directory, contract, version=version, source=settings.model_uri, pinned=pinned
        )


def _regular_files(directory: Path, *names: str) -> None:
    """`ModelError` if one of these names is there but is not a regular file.

    A FIFO (or a device) named ``model_card.json`` would block the reader
    forever; `os.stat` does not open it.
    """
    for name in names:
        path = directory / name
        try:
            mode = path.stat().st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ModelError(f"{path}: {exc.strerror}") from None
        if not stat.S_ISREG(mode):
            raise ModelError(f"{path}: not a regular file")


def check_pin(sha256: str, pinned: str | None, where: object) -> None:
    """`ModelPinError` unless ``sha256`` is the pinned hash (no pin: anything goes)."""
    if pinned is not None and sha256 != pinned:
        raise ModelPinError(
            f"{where}: SHA-256 {sha256[:12]}… is not the pinned model "
            f"(CHURN_MODEL_SHA256={pinned[:12]}…): refused"
        )


def load_directory(
    directory: Path,
    contract: Contract,
    *,
    version: str,
    source: str,
    pinned: str | None = None,
) -> LoadedModel:
    """A model directory as `train` writes it; `ModelError` unless it is whole and sound,
    `ModelPinError` if ``pinned`` is set and its ONNX file has another SHA-256."""
    _regular_files(directory, CARD_FILE, ONNX_FILE, DRIFT_PROFILE_FILE)
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
    check_pin(actual, pinned, path)
    data = path.read_bytes()
    if file_sha256_of(data) != actual:  # replaced between hashing and reading
        raise ModelError(f"{path}: changed while it was being loaded")
    if uses_external_data(data):
        raise ModelError(
            f"{path}: has tensors stored as external data (files beside it): refused, "
            "a served model must be one self-contained file"
        )
    drift_profile = load_drift_profile(directory, card, contract)
    loaded = LoadedModel(OnnxModel(data, contract), card, version, source, drift_profile)
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


def file_sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- ONNX external data ----------------------------------------------------------------
# An ONNX tensor may keep its values in another file (data_location EXTERNAL,
# external_data: location, offset, length); onnxruntime then reads that file,
# relative to the model or the working directory. A served model never needs
# that, so the protobuf is walked (wire format, no onnx package in the image)
# and any such tensor refused. Field numbers are onnx.proto3's.

_MODEL_GRAPH, _MODEL_FUNCTIONS = 7, 25
_FUNCTION_NODE = 7
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_SPARSE_INITIALIZER = 1, 5, 15
_NODE_ATTRIBUTE = 5
_ATTR_T, _ATTR_G, _ATTR_TENSORS, _ATTR_GRAPHS = 5, 6, 10, 11
_ATTR_SPARSE_TENSOR, _ATTR_SPARSE_TENSORS = 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 13, 14
_EXTERNAL = 1
_MAX_DEPTH = 64


def uses_external_data(model: bytes) -> bool:
    """Whether any tensor of the ONNX ``model`` (graph, subgraphs, functions) is external.

    `ModelError` if the bytes are not a well-formed protobuf.
    """
    try:
        return _any_external(model, "model", 0)
    except (IndexError, ValueError) as exc:
        raise ModelError(f"not an ONNX model ({exc})") from None


_CHILDREN: dict[str, dict[int, str]] = {
    "model": {_MODEL_GRAPH: "graph", _MODEL_FUNCTIONS: "function"},
    "function": {_FUNCTION_NODE: "node"},
    "graph": {
        _GRAPH_NODE: "node",
        _GRAPH_INITIALIZER: "tensor",
        _GRAPH_SPARSE_INITIALIZER: "sparse",
    },
    "node": {_NODE_ATTRIBUTE: "attribute"},
    "attribute": {
        _ATTR_T: "tensor",
        _ATTR_G: "graph",
        _ATTR_TENSORS: "tensor",
        _ATTR_GRAPHS: "graph",
        _ATTR_SPARSE_TENSOR: "sparse",
        _ATTR_SPARSE_TENSORS: "sparse",
    },
    "sparse": {_SPARSE_VALUES: "tensor", _SPARSE_INDICES: "tensor"},
    "tensor": {},
}


def _any_external(data: bytes, kind: str, depth: int) -> bool:
    if depth > _MAX_DEPTH:
        raise ValueError("nested too deeply")
    children = _CHILDREN[kind]
    for number, value in _fields(data):
        if kind == "tensor":
            if number == _TENSOR_EXTERNAL_DATA:
                return True
            if number == _TENSOR_DATA_LOCATION and value == _EXTERNAL:
                return True
        elif (
            number in children
            and isinstance(value, bytes)
            and _any_external(value, children[number], depth + 1)
        ):
            return True
    return False


def _fields(data: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, varint value or length-delimited bytes) of one protobuf message."""
    position, end = 0, len(data)
    while position < end:
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, position = _varint(data, position)
            yield number, value
        elif wire == 2:
            length, position = _varint(data, position)
            if position + length > end:
                raise ValueError("truncated field")
            yield number, data[position : position + length]
            position += length
        elif wire == 1:
            position += 8
        elif wire == 5:
            position += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
    if position != end:
        raise ValueError("truncated message")


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


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
