"""Operational routes: liveness, readiness, model description, Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from churn.serving.deps import MetricsDep, ModelDep, require_info_key
from churn.serving.drift_monitor import DriftMonitor
from churn.serving.schemas import HTTPError, ModelInfo, Schemas, Status

INFO_GUARD: Any = [Depends(require_info_key)]
# FastAPI's own documentation routes are turned off when CHURN_INFO_API_KEY is
# set; `docs_router` serves the same pages behind the key instead.
NO_OPEN_DOCS: dict[str, Any] = {"openapi_url": None, "docs_url": None, "redoc_url": None}
OPENAPI_URL = "/openapi.json"

docs_router = APIRouter(include_in_schema=False, dependencies=INFO_GUARD)


@docs_router.get(OPENAPI_URL)
async def openapi(request: Request) -> JSONResponse:
    """The OpenAPI description (only the routes this configuration mounts)."""
    return JSONResponse(request.app.openapi())


@docs_router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - docs")


@docs_router.get("/redoc")
async def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} - ReDoc")


def build_router(schemas: Schemas) -> APIRouter:
    """The operational routes; ``/model`` describes the input ``schemas`` defines."""
    router = APIRouter(tags=["ops"])
    input_schema = schemas.input_schema

    @router.get("/health")
    async def health() -> Status:
        """Liveness: the process answers."""
        return Status(status="ok")

    @router.get("/ready", responses={503: {"model": HTTPError, "description": "Model not loaded."}})
    async def ready(model: ModelDep) -> Status:
        """Readiness: the model is loaded and passed its self-check (503 otherwise)."""
        return Status(status="ready", model_version=model.version)

    # Informational routes: behind CHURN_INFO_API_KEY when it is set (a no-op otherwise).
    @router.get("/model", dependencies=INFO_GUARD)
    async def model_info(model: ModelDep) -> ModelInfo:
        """What is served: version, hashes, training metrics, params, data and input schema."""
        card = model.card
        return ModelInfo(
            version=model.version,
            source=model.source,
            sha256=model.sha256,
            pipeline_sha256=card.sha256,
            estimator=card.estimator,
            threshold=card.threshold,
            training_metrics=card.metrics,
            params=card.params,
            data=card.data,
            input_schema=input_schema,
        )

    @router.get("/metrics", include_in_schema=False, dependencies=INFO_GUARD)
    async def metrics(request: Request, service_metrics: MetricsDep) -> Response:
        """Prometheus metrics; the drift gauges are recomputed first if they are due."""
        drift: DriftMonitor | None = request.app.state.drift
        if drift is not None:
            drift.refresh()
        return Response(generate_latest(service_metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
