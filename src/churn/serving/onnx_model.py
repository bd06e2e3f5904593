"""Scoring with the ONNX export of the pipeline.

The exported graph takes two inputs, ``numeric`` (float32, one column per
numeric feature) and ``categorical`` (strings, one column per categorical
feature), both in the contract's order (the contract names them), and
returns ``probabilities`` of shape ``[n, 2]``. Two arrays per call instead
of one per feature halves the cost of a one-row prediction (~35 µs instead
of ~60 µs); building them from plain Python values needs no pandas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from churn.core.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from churn.core.contract import Contract

NUMERIC_INPUT = "numeric"
CATEGORICAL_INPUT = "categorical"
OUTPUT = "probabilities"


class OnnxModel:
    """An onnxruntime session over the exported pipeline, one thread per call.

    ``contract`` names the features of each input, in the graph's column
    order; the session's input widths must match them.
    """

    def __init__(self, model: bytes, contract: Contract) -> None:
        self.numeric: tuple[str, ...] = contract.numeric_names
        self.categorical: tuple[str, ...] = contract.categorical_names
        import onnxruntime as ort

        options = ort.SessionOptions()
        # One request is tiny: threads cost more than they save, and the
        # service scales by processes (one per core), not threads.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelError(f"not a loadable ONNX model ({exc})") from None
        widths = {i.name: i.shape[-1] for i in self._session.get_inputs()}
        expected = {NUMERIC_INPUT: len(self.numeric), CATEGORICAL_INPUT: len(self.categorical)}
        if widths != expected:
            raise ModelError(f"ONNX inputs {widths} do not match the contract's {expected}")

    def predict(
        self,
        numeric: Sequence[Sequence[float]] | np.ndarray,
        categorical: Sequence[Sequence[str]] | np.ndarray,
    ) -> np.ndarray:
        """P(positive class) per row: rows of numbers and rows of levels, in input order."""
        feeds = {
            NUMERIC_INPUT: np.asarray(numeric, dtype=np.float32),
            CATEGORICAL_INPUT: np.asarray(categorical, dtype=object),
        }
        probabilities = self._session.run([OUTPUT], feeds)[0]
        return np.asarray(probabilities[:, 1], dtype=np.float64)

    def predict_columns(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> np.ndarray:
        """P(positive class) per row, from whole columns keyed by feature name."""
        numeric = [np.asarray(columns[name], dtype=np.float32) for name in self.numeric]
        categorical = [np.asarray(columns[name], dtype=object) for name in self.categorical]
        return self.predict(np.column_stack(numeric), np.column_stack(categorical))
