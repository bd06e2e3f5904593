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

import io
import platform
import re
import zipfile
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from churn.core.artifacts import CARD_FILE, MODEL_FILE, ModelCard, file_sha256
from churn.core.contract import MISSING_LEVEL
from churn.core.errors import ModelError, first_line

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from churn.core.contract import Contract
    from churn.core.params import TrainParams

# Types outside skops' built-in allowlist that our own estimators contain
# (`SimpleImputer`, for nullable numbers, keeps the dtype it was fitted on).
# Anything else found in a model file is refused at load time.
TRUSTED_TYPES = frozenset(
    {"sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor", "numpy.dtype"}
)
LIBRARIES = ("scikit-learn", "skops", "numpy", "pandas")
SERVING_LIBRARIES = ("skl2onnx", "onnxruntime")
# Largest allowed difference in P(positive) between the pipeline and its export.
ONNX_TOLERANCE = 1e-5


def build_pipeline(params: TrainParams, contract: Contract) -> Pipeline:
    """The unfitted preprocessing + estimator pipeline described by ``params``.

    Missing values are handled inside it, where the contract allows them, so
    the ONNX export does the same: a nullable number gets the training
    median (``SimpleImputer``; skl2onnx has no converter for a missing
    indicator), a nullable categorical column one more level,
    `MISSING_LEVEL`. Columns that are never missing get no imputer, so a
    contract without nullable columns gives the same pipeline as before.
    """
    from sklearn.base import clone
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline, make_pipeline
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
        categories=[
            [*c.levels, MISSING_LEVEL] if c.nullable else list(c.levels)
            for c in contract.categorical
        ],
        handle_unknown="error",
        sparse_output=False,
    )
    always = [c.name for c in contract.numeric if not c.nullable]
    nullable = [c.name for c in contract.numeric if c.nullable]
    columns: list[tuple[str, Any, list[str]]] = [("numeric", numeric, always)]
    if nullable:
        imputer = SimpleImputer(strategy="median")
        imputed = imputer if numeric == "passthrough" else make_pipeline(imputer, clone(numeric))
        columns.append(("numeric_imputed", imputed, nullable))
    columns.append(("categorical", categorical, list(contract.categorical_names)))
    preprocess = ColumnTransformer(columns, remainder="drop")
    return Pipeline([("preprocess", preprocess), ("classifier", estimator)])


def export_onnx(pipeline: Pipeline, contract: Contract) -> bytes:
    """The fitted pipeline as an ONNX graph: one input per contract feature.

    Probabilities come out as a plain ``[n, 2]`` tensor (no ZipMap), which is
    what `churn.serving.onnx_model.OnnxModel` reads.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    inputs = [(name, FloatTensorType([None, 1])) for name in contract.numeric_names]
    inputs += [(name, StringTensorType([None, 1])) for name in contract.categorical_names]
    classifier = pipeline.named_steps["classifier"]
    try:
        graph = convert_sklearn(
            pipeline,
            initial_types=inputs,
            options={id(classifier): {"zipmap": False}},
            name=ONNX_GRAPH_NAME,  # skl2onnx's default is random: bytes would differ per run
            custom_conversion_functions=_converter_fixes(),
        )
    except Exception as exc:  # skl2onnx raises assorted errors per converter
        reason = first_line(exc, 200)
        raise ModelError(
            f"cannot export {type(classifier).__name__} to ONNX with skl2onnx "
            f"{version('skl2onnx')}: {reason}"
        ) from None
    _stack_inputs(graph, contract)
    # skl2onnx collects the opsets in a set: their order follows the string
    # hash (PYTHONHASHSEED), so one export in eight had other bytes.
    opsets = sorted(graph.opset_import, key=lambda opset: (opset.domain, opset.version))
    del graph.opset_import[:]
    graph.opset_import.extend(opsets)
    serialized: bytes = graph.SerializeToString()
    return serialized


def _converter_fixes() -> dict[type, Any]:
    """skl2onnx's own converters, wrapped where they break with today's libraries.

    The histogram gradient boosting converter (skl2onnx 1.20) writes a leaf's
    ``nodes_missing_value_tracks_true`` flag as a Python ``False`` into an
    integer list; protobuf 7 refuses booleans in integer fields ("Expected an
    int, got a boolean"), so the whole export failed. The wrapper hands the
    converter a container that turns those flags into 0/1 before the node is
    made: the same graph skl2onnx would build under protobuf < 7.
    """
    from skl2onnx.operator_converters.random_forest import (
        convert_sklearn_random_forest_classifier,
    )
    from sklearn.ensemble import HistGradientBoostingClassifier

    def hist_gradient_boosting(scope: Any, operator: Any, container: Any) -> None:
        convert_sklearn_random_forest_classifier(scope, operator, _IntegerFlags(container))

    return {HistGradientBoostingClassifier: hist_gradient_boosting}


class _IntegerFlags:
    """A skl2onnx container whose ``add_node`` writes boolean list attributes as 0/1."""

    def __init__(self, container: Any) -> None:
        self._container = container

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, *args: Any, **attributes: Any) -> Any:
        fixed = {
            key: [int(item) for item in value] if _has_booleans(value) else value
            for key, value in attributes.items()
        }
        return self._container.add_node(*args, **fixed)


def _has_booleans(value: Any) -> bool:
    return isinstance(value, list) and any(isinstance(item, bool | np.bool_) for item in value)


def _stack_inputs(graph: Any, contract: Contract) -> None:
    """Replace the one-input-per-feature signature with two stacked inputs.

    skl2onnx names one ``[n, 1]`` input per column. A ``Split`` node per kind
    turns ``numeric`` ``[n, n_numeric]`` and ``categorical`` ``[n, n_categorical]``
    back into those tensors, so the converted graph is unchanged behind them
    and a caller feeds two arrays instead of one per feature. skl2onnx picks
    the lowest opset its converters need (11 for logistic regression, 13 or
    more for the tree ensembles); from opset 13 on, ``Split`` takes the
    widths as an input, not an attribute.
    """
    from onnx import TensorProto, checker, helper, numpy_helper

    from churn.serving.onnx_model import CATEGORICAL_INPUT, NUMERIC_INPUT

    numeric, categorical = list(contract.numeric_names), list(contract.categorical_names)
    del graph.graph.input[:]
    graph.graph.input.extend(
        [
            helper.make_tensor_value_info(NUMERIC_INPUT, TensorProto.FLOAT, [None, len(numeric)]),
            helper.make_tensor_value_info(
                CATEGORICAL_INPUT, TensorProto.STRING, [None, len(categorical)]
            ),
        ]
    )
    opset = max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    splits = []
    for source, names in ((NUMERIC_INPUT, numeric), (CATEGORICAL_INPUT, categorical)):
        widths = [1] * len(names)
        if opset < SPLIT_INPUT_OPSET:
            splits.append(
                helper.make_node("Split", [source], names, axis=1, split=widths, name=source)
            )
            continue
        widths_name = f"{source}_widths"
        graph.graph.initializer.append(
            numpy_helper.from_array(np.array(widths, dtype=np.int64), widths_name)
        )
        splits.append(helper.make_node("Split", [source, widths_name], names, axis=1, name=source))
    nodes = list(graph.graph.node)
    del graph.graph.node[:]
    graph.graph.node.extend(splits + nodes)
    checker.check_model(graph)


def onnx_difference(pipeline: Pipeline, onnx: bytes, x: pd.DataFrame, contract: Contract) -> float:
    """Largest |P(positive)| difference between the pipeline and its ONNX export on ``x``.

    Raises `ModelError` when it exceeds `ONNX_TOLERANCE`, so a model whose
    export answers differently is never written or served.
    """
    from churn.serving.onnx_model import OnnxModel

    exported = OnnxModel(onnx, contract).predict_columns(
        {name: x[name].to_numpy() for name in x.columns}
    )
    difference = float(np.max(np.abs(exported - pipeline.predict_proba(x)[:, 1])))
    if difference > ONNX_TOLERANCE:
        raise ModelError(
            f"the ONNX export differs from the pipeline by {difference:.2e} "
            f"(> {ONNX_TOLERANCE:g}) on {len(x)} rows"
        )
    return difference


def library_versions() -> dict[str, str]:
    libraries = (*LIBRARIES, *SERVING_LIBRARIES)
    return {"python": platform.python_version(), **{lib: version(lib) for lib in libraries}}


def save_model(pipeline: Pipeline, model_dir: Path) -> str:
    """Write the fitted pipeline to ``model_dir`` and return its SHA-256."""
    import skops.io as sio

    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / MODEL_FILE
    sio.dump(pipeline, path)
    path.write_bytes(canonical_skops(path.read_bytes()))
    return file_sha256(path)


# skops names each array file, and each shared object's memo entry, after
# id(obj): a memory address, different on every run.
_SKOPS_IDS = re.compile(r'("__id__": |"file": ")(\d+)')
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
SKOPS_SCHEMA = "schema.json"
ONNX_GRAPH_NAME = "pipeline"
# The ONNX opset from which `Split` reads its output widths from an input.
SPLIT_INPUT_OPSET = 13


def canonical_skops(data: bytes) -> bytes:
    """The same skops file with reproducible bytes: the object ids renumbered in order
    of first appearance in its schema, entries sorted, timestamps fixed. The same
    pipeline then always gives the same file (and DVC hash); loading is unchanged."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        entries = {info.filename: (info, source.read(info)) for info in source.infolist()}
    schema_info, schema_bytes = entries.pop(SKOPS_SCHEMA)
    schema = schema_bytes.decode("utf-8")
    numbers: dict[str, str] = {}
    for match in _SKOPS_IDS.finditer(schema):
        numbers.setdefault(match.group(2), str(len(numbers) + 1))
    schema = _SKOPS_IDS.sub(lambda m: m.group(1) + numbers[m.group(2)], schema)
    renamed = {SKOPS_SCHEMA: (schema_info, schema.encode("utf-8"))}
    for name, (info, content) in entries.items():
        stem, dot, suffix = name.partition(".")
        new = f"{numbers.get(stem, stem)}{dot}{suffix}"
        renamed[new] = (info, content)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in sorted(renamed):
            info, content = renamed[name]
            fixed = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            fixed.compress_type = info.compress_type
            fixed.external_attr = 0o644 << 16
            target.writestr(fixed, content)
    return out.getvalue()


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
