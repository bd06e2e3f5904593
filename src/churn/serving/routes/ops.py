"""Operational routes: liveness, readiness, model description, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from churn.serving.deps import MetricsDep, ModelDep
from churn.serving.drift_monitor import DriftMonitor
from churn.serving.schemas import HTTPError, ModelInfo, Schemas, Status


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

    @router.get("/model")
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

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request, service_metrics: MetricsDep) -> Response:
        """Prometheus metrics; the drift gauges are recomputed first if they are due."""
        drift: DriftMonitor | None = request.app.state.drift
        if drift is not None:
            drift.refresh()
        return Response(generate_latest(service_metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
