"""A made-up model card for tests of what reads one (no model behind it)."""

from __future__ import annotations

from typing import Any

from churn.core.artifacts import ModelCard


def stand_in_card(**overrides: Any) -> ModelCard:
    """A card with fixed fake hashes; ``overrides`` replace any field."""
    fields: dict[str, Any] = {
        "sha256": "a" * 64,
        "onnx_sha256": "b" * 64,
        "onnx_max_abs_diff": 1e-7,
        "estimator": "logistic_regression",
        "threshold": 0.5,
        "params": {},
        "features": [],
        "data": {},
        "metrics": {},
        "reference": {},
    }
    return ModelCard(**(fields | overrides))
