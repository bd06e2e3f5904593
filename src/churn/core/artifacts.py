"""What the pipeline leaves in `models/`, readable without the training stack.

The serving process imports this module, so it must stay light: standard
library and pydantic only (no pandas, scikit-learn or MLflow).

`models/` holds:

- ``model.skops``: the fitted scikit-learn pipeline (training and evaluation);
- ``model.onnx``: the same pipeline exported to ONNX (serving);
- ``model_card.json``: hashes of both, params, data hash, metrics, versions;
- ``drift_profile.json``: the training split reduced to bin counts, and the
  drift rule (`churn.monitoring.drift.ModelDriftProfile`), for the service's live drift
  metrics;

and, outside it (``RUN_RECORD``), the MLflow run and registered version the
model was logged as. A run id is new on every run, so it is kept out of the
cached, hashed `models/` output: the same code, data and params give the
same bytes there, and `dvc.lock` does not change when nothing did.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit, urlunsplit

from churn.core.errors import ModelError
from churn.core.jsonio import read_json_object

MODEL_FILE = "model.skops"
ONNX_FILE = "model.onnx"
CARD_FILE = "model_card.json"
DRIFT_PROFILE_FILE = "drift_profile.json"
RUN_FILE = "mlflow_run.json"
# Where `train` writes its run record (git-ignored, not a DVC output); the
# image copies it in beside the model as ``RUN_FILE``.
RUN_RECORD = Path("reports/run") / RUN_FILE
# Where a training run keeps its serving bundle (ONNX model, card, drift profile) in MLflow.
SERVING_ARTIFACTS = "serving"


def file_sha256(path: Path) -> str:
    """Content hash of a file, streamed so large files do not fill memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_json(path: Path) -> dict[str, Any]:
    return read_json_object(path, ModelError)


class _JsonRecord:
    """A frozen dataclass kept as one JSON object in a file."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> Self:
        try:
            return cls(**_read_json(path))
        except TypeError as exc:  # missing or unknown keys
            raise ModelError(f"{path}: not a valid {cls.__name__} ({exc})") from None


@dataclass(frozen=True)
class ModelCard(_JsonRecord):
    """What a model is, where it came from and how good it was at training time.

    ``reference`` holds a few training rows with the scores the fitted
    pipeline gave them, so any later copy of the model (the ONNX export, a
    container) can check itself against the original.
    """

    sha256: str
    onnx_sha256: str
    onnx_max_abs_diff: float
    """The ONNX export's largest difference from the pipeline, as a power-of-ten bound."""
    estimator: str
    threshold: float
    params: dict[str, Any]
    features: list[str]
    data: dict[str, Any]
    metrics: dict[str, float]
    reference: dict[str, Any]
    libraries: dict[str, str] = field(default_factory=dict)
    # None: a model saved before drift profiles were (the service then runs without).
    drift_profile_sha256: str | None = None


@dataclass(frozen=True)
class RunRecord(_JsonRecord):
    """Where a trained model was logged, so later stages can add to that run.

    ``model_sha256`` is the card's ``sha256`` of the model the run logged: a
    record is only believed for that model (`belongs_to`), never for another
    one that later sits in `models/`.
    """

    tracking_uri: str
    experiment: str
    run_id: str
    model_uri: str
    registered_model: str
    version: str
    model_sha256: str

    def __post_init__(self) -> None:
        # Credentials in the URI (user:password@host) never reach a file or an image.
        object.__setattr__(self, "tracking_uri", without_credentials(self.tracking_uri))

    def belongs_to(self, card: ModelCard) -> bool:
        return self.model_sha256 == card.sha256

    @classmethod
    def read_for(cls, path: Path, card: ModelCard) -> RunRecord | None:
        """The record at ``path`` if there is one and it is ``card``'s model's, else None."""
        if not path.is_file():
            return None
        record = cls.read(path)
        return record if record.belongs_to(card) else None


def without_credentials(uri: str) -> str:
    """``uri`` with any ``user:password@`` removed (other URIs unchanged)."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


MODEL_URI_PATTERN = r"^models:/[^@\s]+@[^@\s]+$"


def parse_model_uri(uri: str) -> tuple[str, str]:
    """``models:/<name>@<alias>`` → (name, alias); `ValueError` for anything else."""
    if re.fullmatch(MODEL_URI_PATTERN, uri) is None:
        raise ValueError(f"{uri!r} must look like models:/<name>@<alias>")
    name, alias = uri.removeprefix("models:/").split("@", 1)
    return name, alias
