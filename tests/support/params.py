"""Parameters changed the way a person changes them: edit the parsed values, write YAML.

Tests never search and replace text in ``params.yaml``: a fork's file has
other values, comments and layout. They change the parsed `Params` and write
the result (`write_params`), or pass overrides as ``dvc exp run -S`` does
(`flat`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel

from churn.core.params import MetricGate, Params

M = TypeVar("M", bound=BaseModel)


def deep_update(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied key by key, nested mappings merged."""
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_update(out[key], value)
        else:
            out[key] = value
    return out


def overridden(model: M, overrides: Mapping[str, Any]) -> M:
    """``model`` with nested ``overrides`` (e.g. a domain's ``weaker_train``), validated."""
    return type(model).model_validate(deep_update(model.model_dump(), overrides))


def flat(overrides: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested overrides as dotted keys: ``{"a": {"b": 1}}`` → ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out |= flat(value, f"{name}.")
        else:
            out[name] = value
    return out


def dotted(model: BaseModel, name: str) -> Any:
    """The value at a dotted key of a parameters model: ``train.seed``."""
    value: Any = model.model_dump()
    for part in name.split("."):
        value = value[part]
    return value


def write_params(params: Params, path: Path) -> Path:
    """``params`` as a YAML file that `load_params` reads back equal."""
    path.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    return path


def nudged(gate: MetricGate, value: float, by: float) -> float:
    """``value`` moved ``by`` in the gate's better direction (a negative ``by``: worse)."""
    return value + by if gate.higher_is_better else value - by


def with_limit(params: Params, metric: str, limit: float) -> Params:
    """``params`` with the gate's ``limit`` of ``metric`` changed."""
    gate = params.gate[metric].model_copy(update={"limit": limit})
    return params.model_copy(update={"gate": {**params.gate, metric: gate}})


# -- metric values placed against a gate: the tests' numbers follow params.yaml's ---------

HEADROOM = 0.01
"""How far past its limit, beyond the allowed regression, a comfortable value sits."""


def comfortable(gates: Mapping[str, MetricGate]) -> dict[str, float]:
    """Values that clear every limit by more than the allowed regression plus `HEADROOM`."""
    return {m: nudged(g, g.limit, g.max_regression + HEADROOM) for m, g in gates.items()}


def at_limit(gates: Mapping[str, MetricGate], by: float) -> dict[str, float]:
    """Each metric ``by`` better than its limit (a negative ``by``: past it)."""
    return {m: nudged(g, g.limit, by) for m, g in gates.items()}


def limit_problem(metric: str, gate: MetricGate, value: float) -> str:
    """The gate's words for ``value`` beyond ``metric``'s limit."""
    side = "below the floor" if gate.higher_is_better else "above the ceiling"
    return f"{metric}: {value:.4f} is {side} of {gate.limit:g}"


def regression_problem(metric: str, gate: MetricGate, value: float, baseline: float) -> str:
    """The gate's words for ``value`` worse than ``baseline`` by more than allowed."""
    return (
        f"{metric}: {value:.4f} is {gate.worsening(value, baseline):.4f} worse than the "
        f"baseline's {baseline:.4f} (allowed: {gate.max_regression:g})"
    )
