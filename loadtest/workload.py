"""What the simulated users send, and how their answers are judged.

Kept apart from the locustfile so that it imports no locust (and no gevent
monkey-patching): the unit tests check that every record in the pool is a
valid request body and that the response checks catch what they should.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from churn.serving.records import ApiRecord, to_api_records

if TYPE_CHECKING:
    from pathlib import Path

    from churn.core.domain import Domain

HTTP_OK = 200


def record_pool(raw_files: list[Path], domain: Domain, size: int, seed: int) -> list[ApiRecord]:
    """The contract's example plus ``size`` records drawn (seeded) from the raw files.

    The files go through the pipeline's own reading and repairs
    (`churn.core.data.load`), so the pool holds what the model was trained
    on, as API records (`churn.serving.records.to_api_records`). Rows with
    a missing value are skipped, not repaired.
    """
    from churn.core.data import load

    contract = domain.contract
    frame = load(raw_files, domain)
    complete = frame[[contract.id.name, *contract.feature_names]].dropna()
    if complete.empty:
        raise ValueError(f"{', '.join(map(str, raw_files))}: no complete rows to send")
    sample = complete.sample(n=min(size, len(complete)), random_state=seed)
    return [contract.api_example(), *to_api_records(sample, contract)]


def _probability_problem(value: Any, where: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{where}: probability is {value!r}, not a number"
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        return f"{where}: probability {value!r} is outside [0, 1]"
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
    return _probability_problem(payload.get("probability"), "prediction")


def batch_problem(status: int, body: str | None, expected: int) -> str | None:
    """Why a ``POST /predict/batch`` answer is wrong (``expected`` predictions)."""
    payload, problem = _parse(status, body)
    if problem is not None:
        return problem
    predictions = payload.get("predictions") if isinstance(payload, dict) else None
    if not isinstance(predictions, list):
        return "HTTP 200 but the body has no predictions list"
    if len(predictions) != expected:
        return f"{len(predictions)} predictions for {expected} records"
    for index, prediction in enumerate(predictions):
        value = prediction.get("probability") if isinstance(prediction, dict) else None
        if (found := _probability_problem(value, f"predictions[{index}]")) is not None:
            return found
    return None
