"""Dependencies shared by the routes, as ``Annotated`` aliases.

Prediction routes take one dependency, `Serving`, rather than one per piece
of state: each dependency costs FastAPI tens of microseconds to solve, a
real share of a prediction that itself takes about a hundred. All are
``async def``: FastAPI runs a plain ``def`` dependency in a worker thread,
and that hop alone cost more than the whole prediction.
"""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from churn.serving.loader import LoadedModel
from churn.serving.middleware import ServiceMetrics
from churn.serving.recorder import Recorder
from churn.serving.schemas import REQUEST_ID_PATTERN
from churn.serving.settings import ServingSettings

REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
API_KEY_HEADER = "x-api-key"


@dataclass(frozen=True, slots=True)
class Serving:
    """What a prediction route needs: the model, metrics, settings, a request id, the log."""

    model: LoadedModel
    metrics: ServiceMetrics
    settings: ServingSettings
    request_id: str
    prediction_log: Recorder | None  # None when the log is off


def _loaded_model(request: Request) -> LoadedModel:
    model: LoadedModel | None = request.app.state.model
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "model not loaded")
    return model


async def _serving(request: Request) -> Serving:
    """The caller's X-Request-ID is kept when it is a safe token, else a new one is made."""
    given = request.headers.get("x-request-id")
    state = request.app.state
    return Serving(
        model=_loaded_model(request),
        metrics=state.metrics,
        settings=state.settings,
        request_id=given if given and REQUEST_ID.match(given) else uuid.uuid4().hex,
        prediction_log=state.prediction_log,
    )


async def _model(request: Request) -> LoadedModel:
    return _loaded_model(request)


async def _metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def require_api_key(request: Request) -> None:
    """The X-API-Key header must equal the configured key (constant-time compare).

    Added to the prediction routes only when a key is configured.
    """
    settings: ServingSettings = request.app.state.settings
    if settings.api_key is None:
        return
    given = request.headers.get(API_KEY_HEADER, "").encode()
    if not secrets.compare_digest(given, settings.api_key.get_secret_value().encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "missing or wrong X-API-Key header",
            headers={"WWW-Authenticate": "ApiKey"},
        )


async def _feedback_log(request: Request) -> Recorder:
    recorder: Recorder | None = request.app.state.feedback_log
    if recorder is None:  # the route exists only with the log on: this is before start-up
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "feedback log not open")
    return recorder


ServingDep = Annotated[Serving, Depends(_serving)]
FeedbackLogDep = Annotated[Recorder, Depends(_feedback_log)]
ModelDep = Annotated[LoadedModel, Depends(_model)]
MetricsDep = Annotated[ServiceMetrics, Depends(_metrics)]
