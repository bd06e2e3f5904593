"""The model: one scikit-learn `Pipeline`, its safe persistence and its card.

`build_pipeline` returns the *unfitted* preprocessing + estimator pipeline,
with its columns and categorical levels taken from the data contract, so the
object that is trained is the object that is served.

Models are stored with skops, whose loader rebuilds objects from a schema and
refuses types it has not been told to trust, instead of `pickle`, which runs
whatever code the file names. Before loading, the file's SHA-256 is checked
against the model card written beside it.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn import contract
from churn.data import file_sha256

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from churn.params import TrainParams

MODEL_FILE = "model.skops"
CARD_FILE = "model_card.json"
# Types outside skops' built-in allowlist that our own estimators contain.
# Anything else found in a model file is refused at load time.
TRUSTED_TYPES = frozenset({"sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"})
LIBRARIES = ("scikit-learn", "skops", "numpy", "pandas")


class ModelError(Exception):
    """A model directory that is missing, corrupt or does not match its card."""


def build_pipeline(params: TrainParams) -> Pipeline:
    """The unfitted preprocessing + estimator pipeline described by ``params``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    estimator: Any
    numeric: Any
    if params.estimator == "logistic_regression":
        lr = params.logistic_regression
        numeric = StandardScaler()
        estimator = LogisticRegression(C=lr.C, max_iter=lr.max_iter, random_state=params.seed)
    else:
        hgb = params.hist_gradient_boosting
        # Trees need no scaling, and a scaler in front of trees makes float32
        # exports (ONNX) flip branches: keep the numbers as they are.
        numeric = "passthrough"
        estimator = HistGradientBoostingClassifier(
            learning_rate=hgb.learning_rate,
            max_iter=hgb.max_iter,
            max_depth=hgb.max_depth,
            l2_regularization=hgb.l2_regularization,
            random_state=params.seed,
        )
    categorical = OneHotEncoder(
        categories=[list(c.levels) for c in contract.CATEGORICAL_FEATURES],
        handle_unknown="error",
        sparse_output=False,
    )
    preprocess = ColumnTransformer(
        [
            ("numeric", numeric, contract.numeric_names()),
            ("categorical", categorical, contract.categorical_names()),
        ],
        remainder="drop",
    )
    return Pipeline([("preprocess", preprocess), ("classifier", estimator)])


@dataclass(frozen=True)
class ModelCard:
    """What a model is, where it came from and how good it was at training time."""

    sha256: str
    estimator: str
    params: dict[str, Any]
    features: list[str]
    data: dict[str, Any]
    metrics: dict[str, float]
    libraries: dict[str, str] = field(default_factory=dict)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def read(cls, path: Path) -> ModelCard:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise ModelError(f"{path}: no model card") from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise ModelError(f"{path}: not a valid model card ({exc})") from None


def library_versions() -> dict[str, str]:
    return {"python": platform.python_version(), **{lib: version(lib) for lib in LIBRARIES}}


def save_model(pipeline: Pipeline, model_dir: Path) -> str:
    """Write the fitted pipeline to ``model_dir`` and return its SHA-256."""
    import skops.io as sio

    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / MODEL_FILE
    sio.dump(pipeline, path)
    return file_sha256(path)


def load_model(model_dir: Path) -> tuple[Pipeline, ModelCard]:
    """Load a pipeline after checking its hash and the types it contains."""
    import skops.io as sio

    card = ModelCard.read(model_dir / CARD_FILE)
    path = model_dir / MODEL_FILE
    if not path.is_file():
        raise ModelError(f"{path}: no model file")
    actual = file_sha256(path)
    if actual != card.sha256:
        raise ModelError(
            f"{path}: SHA-256 {actual[:12]}… does not match the card's {card.sha256[:12]}…"
        )
    pipeline: Pipeline = sio.load(path, trusted=trusted_types(path))
    return pipeline, card


def trusted_types(path: Path) -> list[str]:
    """The non-default types a model file needs, if all are on our allowlist."""
    import skops.io as sio

    try:
        untrusted = set(sio.get_untrusted_types(file=path))
    except Exception as exc:  # skops raises assorted errors for a damaged zip
        raise ModelError(f"{path}: not a readable skops file ({exc})") from None
    if unknown := untrusted - TRUSTED_TYPES:
        raise ModelError(f"{path}: refuses to load untrusted types {sorted(unknown)}")
    return sorted(untrusted)
