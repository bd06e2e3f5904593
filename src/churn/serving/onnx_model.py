"""Scoring with the ONNX export of the pipeline, column by column.

The exported graph takes one ``[n, 1]`` input per contract feature (float32
numbers, string levels) and returns ``probabilities`` of shape ``[n, 2]``.
Building those inputs from plain Python values needs no pandas, which is why
one prediction costs tens of microseconds instead of milliseconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from churn import contract
from churn.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

OUTPUT = "probabilities"
_NUMERIC = frozenset(contract.numeric_names())


class OnnxModel:
    """An onnxruntime session over the exported pipeline, one thread per call."""

    def __init__(self, model: bytes) -> None:
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
        expected = set(contract.feature_names())
        if (inputs := {i.name for i in self._session.get_inputs()}) != expected:
            raise ModelError(f"ONNX inputs {sorted(inputs)} do not match the contract features")

    def predict(self, columns: Mapping[str, Sequence[Any] | np.ndarray]) -> np.ndarray:
        """P(churn) for each row; ``columns`` maps contract feature names to values."""
        feeds = {
            name: np.asarray(values, dtype=np.float32 if name in _NUMERIC else object).reshape(
                -1, 1
            )
            for name, values in columns.items()
        }
        probabilities = self._session.run([OUTPUT], feeds)[0]
        return np.asarray(probabilities[:, 1], dtype=np.float64)
