"""The FastAPI application: `create_app(settings)` builds it, the lifespan loads the model.

The lifespan also opens the prediction log (when configured), and closes it
on shutdown, which writes what is still buffered.

Run it with ``churn serve`` (which checks the model before binding the port)
or any ASGI server: ``uvicorn --factory churn.serving.app:create_app``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from churn.serving import loader
from churn.serving.deps import require_api_key
from churn.serving.loader import LoadedModel
from churn.serving.middleware import BodySizeLimitMiddleware, MetricsMiddleware, ServiceMetrics
from churn.serving.prediction_log import PredictionLog
from churn.serving.routes import feedback, ops, predict
from churn.serving.settings import ServingSettings

log = logging.getLogger(__name__)


def create_app(
    settings: ServingSettings | None = None, model: LoadedModel | None = None
) -> FastAPI:
    """The service. ``model``, if given, is an already loaded and self-checked model."""
    settings = settings or ServingSettings()
    metrics = ServiceMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loaded = model or loader.load(settings)
        metrics.model.labels(loaded.version, loaded.sha256, loaded.card.estimator).set(1)
        prediction_log = PredictionLog.open(settings, metrics)
        if prediction_log is not None:
            prediction_log.start()
            app.state.prediction_log = prediction_log.predictions
            app.state.feedback_log = prediction_log.feedback
        app.state.model = loaded
        try:
            yield
        finally:
            app.state.model = app.state.prediction_log = app.state.feedback_log = None
            if prediction_log is not None:
                # Joins threads and may upload to S3: not on the event loop.
                await asyncio.to_thread(prediction_log.close)

    app = FastAPI(
        title="Churn prediction",
        summary="Churn probability for telecom customers, from the model the pipeline trained.",
        version="1",
        lifespan=lifespan,
        # The service exports Prometheus metrics itself (/metrics). FastAPI's
        # native OpenTelemetry checks for providers on every request; turn it
        # on here if you run an OpenTelemetry collector.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.model = None
    app.state.prediction_log = app.state.feedback_log = None
    protect = [Depends(require_api_key)] if settings.api_key is not None else []
    app.include_router(predict.router, dependencies=protect)
    if settings.prediction_log_dir is not None:  # feedback goes to the log, or nowhere
        app.include_router(feedback.router, dependencies=protect)
    app.include_router(ops.router)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(BodySizeLimitMiddleware, limit=settings.max_body_bytes)
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
