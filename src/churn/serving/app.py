"""The FastAPI application: `create_app(settings)` builds it, the lifespan loads the model.

The app is built for one domain's contract (by default the one
`churn.core.domain.load_domain` finds): the request models, the routes that
take records and the model checks are all derived from it, once, here.

The lifespan puts the model (and a candidate, if configured) into the model
slots (`churn.serving.rollout`), opens the prediction log (when configured),
and closes it on shutdown, which writes what is still buffered; and starts
the live drift monitor when the model has a drift profile.

Run it with ``churn serve`` (which checks the model before binding the port)
or any ASGI server: ``uvicorn --factory churn.serving.app:create_app``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import Depends, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from churn.core.domain import load_domain
from churn.serving import loader, schemas
from churn.serving.deps import require_admin_key, require_api_key, require_feedback_key
from churn.serving.drift_monitor import DriftMonitor
from churn.serving.limits import LimitSettings, RequestGuard
from churn.serving.loader import LoadedModel
from churn.serving.middleware import BodySizeLimitMiddleware, MetricsMiddleware, ServiceMetrics
from churn.serving.prediction_log import PredictionLog
from churn.serving.rollout import Rollout, load_challenger
from churn.serving.routes import admin, feedback, ops, predict
from churn.serving.settings import ServingSettings

if TYPE_CHECKING:
    from churn.core.contract import Contract

log = logging.getLogger(__name__)


def create_app(
    settings: ServingSettings | None = None,
    model: LoadedModel | None = None,
    challenger: LoadedModel | None = None,
    contract: Contract | None = None,
    limits: LimitSettings | None = None,
) -> FastAPI:
    """The service for ``contract``'s records (default: the domain's, `load_domain`).

    ``model`` and ``challenger``, if given, are loaded and self-checked
    against the same contract. Without them the lifespan loads what the
    settings name: the model, and a candidate for the standby slot if
    ``CHURN_CHALLENGER_MODEL_*`` is set. ``limits`` (default: from the
    environment) bound the requests in flight (`churn.serving.limits`).
    """
    settings = settings or ServingSettings()
    limits = limits or LimitSettings()
    if contract is None:
        contract = load_domain().contract
    api = schemas.build(contract)
    metrics = ServiceMetrics()
    rollout = Rollout(settings, metrics, contract)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = model or loader.load(settings, contract)
        candidate = challenger or load_challenger(settings, contract)
        prediction_log = PredictionLog.open(settings, metrics)
        if prediction_log is not None:
            prediction_log.start()
            app.state.prediction_log = prediction_log.predictions
            app.state.feedback_log = prediction_log.feedback
        rollout.start(loaded, candidate)
        app.state.drift = DriftMonitor.start(loaded, settings, metrics)
        try:
            yield
        finally:
            rollout.stop()
            app.state.prediction_log = app.state.feedback_log = None
            app.state.drift = None
            if prediction_log is not None:
                # Joins threads and may upload to S3: not on the event loop.
                await asyncio.to_thread(prediction_log.close)

    app = FastAPI(
        title=contract.title,
        summary=contract.description or None,
        version="1",
        lifespan=lifespan,
        # The service exports Prometheus metrics itself (/metrics). FastAPI's
        # native OpenTelemetry checks for providers on every request; turn it
        # on here if you run an OpenTelemetry collector.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        # No 307 from /predict/ to /predict: Starlette builds that Location from
        # the Host header, before any route's key check.
        redirect_slashes=False,
        # With CHURN_INFO_API_KEY the API description is served by ops.docs_router, behind it.
        **(ops.NO_OPEN_DOCS if settings.info_api_key is not None else {}),
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.rollout = rollout
    app.state.prediction_log = app.state.feedback_log = None
    app.state.drift = None
    protect = [Depends(require_api_key)] if settings.api_key is not None else []
    app.include_router(predict.build_router(api), dependencies=protect)
    if settings.feedback_enabled:  # feedback goes to the log, with its own key, or nowhere
        on_feedback = [Depends(require_feedback_key)] if settings.feedback_api_key else []
        app.include_router(feedback.build_router(api), dependencies=on_feedback)
    elif settings.prediction_log_dir is not None:
        log.info("/feedback is off: CHURN_API_KEY is set and CHURN_FEEDBACK_API_KEY is not")
    app.include_router(ops.build_router(api))
    if settings.info_api_key is not None:
        app.include_router(ops.docs_router)
    if settings.admin_enabled:  # the settings refuse it without CHURN_ADMIN_API_KEY
        app.include_router(admin.router, dependencies=[Depends(require_admin_key)])
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(BodySizeLimitMiddleware, limit=settings.max_body_bytes)
    # Outermost last: metrics see every answer, including the guard's 503s.
    app.add_middleware(RequestGuard, limits=limits)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 with, per problem, the field's path, what is wrong and what was sent."""
    assert isinstance(exc, RequestValidationError)
    detail = []
    for error in exc.errors():
        if error["type"] == "json_invalid":  # not a field's fault: the body is not JSON
            message = f"malformed JSON: {error.get('ctx', {}).get('error', error['msg'])}"
            detail.append({"field": "body", "message": message, "type": error["type"]})
            continue
        field = ".".join(str(part) for part in error["loc"] if part != "body") or "body"
        detail.append({"field": field, "message": error["msg"], "type": error["type"]})
    return JSONResponse({"detail": detail}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)
