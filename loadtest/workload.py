"""What the simulated users send, and how their answers are judged.

Kept apart from the locustfile so that it imports no locust (and no gevent
monkey-patching): the unit tests check that every customer in the pool is a
valid request body and that the response checks catch what they should.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from churn import contract
from churn.serving.schemas import EXAMPLE

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

Customer = dict[str, str | int | float]
"""One customer as the API's JSON body: snake_case names, plain Python values."""

HTTP_OK = 200
_INT_COLUMNS = frozenset(c.name for c in contract.NUMERIC_FEATURES if c.kind == "int")
_FLOAT_COLUMNS = frozenset(c.name for c in contract.NUMERIC_FEATURES if c.kind != "int")


def _to_api(row: pd.Series) -> Customer:
    """One cleaned CSV row as a request body: ints stay ints (the API is strict)."""
    customer: Customer = {}
    for column, value in row.items():
        name = str(column)
        if name in _INT_COLUMNS:
            customer[contract.api_name(name)] = int(value)
        elif name in _FLOAT_COLUMNS:
            customer[contract.api_name(name)] = float(value)
        else:
            customer[contract.api_name(name)] = str(value)
    return customer


def customer_pool(raw_csv: Path, size: int, seed: int) -> list[Customer]:
    """`EXAMPLE` plus ``size`` customers drawn (seeded) from the real raw file.

    The file goes through the pipeline's own cleaning (`churn.data.load`) and
    feature selection (`churn.data.features`), so the pool holds exactly what
    the model was trained on, in the API's snake_case JSON. Rows with a
    missing value (none in the shipped file) are skipped, not repaired.
    """
    from churn.data import features, load

    frame = load([raw_csv])
    columns = features(frame)
    columns.insert(0, contract.ID_COLUMN, frame[contract.ID_COLUMN])
    complete = columns.dropna()
    if complete.empty:
        raise ValueError(f"{raw_csv}: no complete customer rows to send")
    sample = complete.sample(n=min(size, len(complete)), random_state=seed)
    return [dict(EXAMPLE), *(_to_api(row) for _, row in sample.iterrows())]


def _probability_problem(value: Any, where: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{where}: churn_probability is {value!r}, not a number"
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        return f"{where}: churn_probability {value!r} is outside [0, 1]"
    return None


def _parse(status: int, body: str | None) -> tuple[Any, str | None]:
    """The JSON body of a 200 answer, or why there is none."""
    if status == 0:  # how locust's FastHttpUser reports a request that got no answer
        return None, "no HTTP response (connection refused or reset, or timed out)"
    if status != HTTP_OK:
        snippet = (body or "").strip().replace("\n", " ")[:200]
        return None, f"HTTP {status}: {snippet}" if snippet else f"HTTP {status}"
    try:
        return json.loads(body or ""), None
    except json.JSONDecodeError:
        return None, "HTTP 200 but the body is not JSON"


def prediction_problem(status: int, body: str | None) -> str | None:
    """Why a ``POST /predict`` answer is wrong, or None when it is right."""
    payload, problem = _parse(status, body)
    if problem is not None:
        return problem
    if not isinstance(payload, dict):
        return "HTTP 200 but the body is not a JSON object"
    return _probability_problem(payload.get("churn_probability"), "prediction")


def batch_problem(status: int, body: str | None, expected: int) -> str | None:
    """Why a ``POST /predict/batch`` answer is wrong (``expected`` predictions)."""
    payload, problem = _parse(status, body)
    if problem is not None:
        return problem
    predictions = payload.get("predictions") if isinstance(payload, dict) else None
    if not isinstance(predictions, list):
        return "HTTP 200 but the body has no predictions list"
    if len(predictions) != expected:
        return f"{len(predictions)} predictions for {expected} customers"
    for index, prediction in enumerate(predictions):
        value = prediction.get("churn_probability") if isinstance(prediction, dict) else None
        if (found := _probability_problem(value, f"predictions[{index}]")) is not None:
            return found
    return None
