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
from pydantic import SecretStr

from churn.serving.drift_monitor import DriftMonitor
from churn.serving.loader import LoadedModel
from churn.serving.middleware import ServiceMetrics
from churn.serving.recorder import Recorder
from churn.serving.rollout import Rollout, Traffic
from churn.serving.schemas import REQUEST_ID_PATTERN
from churn.serving.settings import ServingSettings

REQUEST_ID = re.compile(REQUEST_ID_PATTERN)
API_KEY_HEADER = "x-api-key"


@dataclass(frozen=True, slots=True)
class Serving:
    """What a prediction route needs: the models, metrics, settings, a request id, the log."""

    traffic: Traffic  # taken once per request: it finishes on these models
    metrics: ServiceMetrics
    settings: ServingSettings
    request_id: str
    prediction_log: Recorder | None  # None when the log is off
    drift: DriftMonitor | None  # None when the model has no drift profile


def _traffic(request: Request) -> Traffic:
    rollout: Rollout = request.app.state.rollout
    if (traffic := rollout.traffic) is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "model not loaded")
    return traffic


async def _serving(request: Request) -> Serving:
    """The request id `RequestGuard` made (it replaces any client X-Request-ID); a fresh one
    when the app runs without the guard (in-process tests)."""
    given = request.headers.get("x-request-id")
    state = request.app.state
    return Serving(
        traffic=_traffic(request),
        metrics=state.metrics,
        settings=state.settings,
        request_id=given if given and REQUEST_ID.match(given) else uuid.uuid4().hex,
        prediction_log=state.prediction_log,
        drift=state.drift,
    )


async def _model(request: Request) -> LoadedModel:
    """The active model."""
    return _traffic(request).champion


async def _rollout(request: Request) -> Rollout:
    _traffic(request)  # 503 before start-up
    rollout: Rollout = request.app.state.rollout
    return rollout


async def _metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def require_api_key(request: Request) -> None:
    """The X-API-Key header must equal the configured key (constant-time compare).

    Added to the prediction routes only when a key is configured.
    """
    settings: ServingSettings = request.app.state.settings
    _check_key(request, settings.api_key)


async def require_admin_key(request: Request) -> None:
    """As `require_api_key`, with CHURN_ADMIN_API_KEY (there is no fallback: the
    settings refuse /admin without it, and a missing key here fails closed)."""
    settings: ServingSettings = request.app.state.settings
    _check_key(request, settings.admin_api_key, required=True)


async def require_feedback_key(request: Request) -> None:
    """As `require_api_key`, with CHURN_FEEDBACK_API_KEY (never the prediction key)."""
    settings: ServingSettings = request.app.state.settings
    _check_key(request, settings.feedback_api_key)


async def require_info_key(request: Request) -> None:
    """As `require_api_key`, with CHURN_INFO_API_KEY (/model, /metrics, the API docs)."""
    settings: ServingSettings = request.app.state.settings
    _check_key(request, settings.info_api_key)


def _check_key(request: Request, key: SecretStr | None, *, required: bool = False) -> None:
    if key is None:
        if required:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "no key is configured")
        return
    given = request.headers.get(API_KEY_HEADER, "").encode()
    if not secrets.compare_digest(given, key.get_secret_value().encode()):
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
RolloutDep = Annotated[Rollout, Depends(_rollout)]
