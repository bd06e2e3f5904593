"""Prediction routes: one record, or a bounded batch.

Each scored record becomes one line of the prediction log (when it is on),
handed to a background writer; see `churn.serving.recorder`. It is also
counted into the live drift window (`churn.serving.drift_monitor`).

Which model answers a record is `churn.serving.rollout`'s decision: the
active model (the champion), or the candidate for the records an A/B test
sends to it; in shadow mode the candidate also scores the champion's
records, for the log only.

Both bodies are validated straight from bytes (`churn.serving.fastpath`):
the record model is the domain's, built by `churn.serving.schemas.build`.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError

from churn.monitoring.abtest import CHALLENGER, CHAMPION
from churn.serving.deps import ServingDep
from churn.serving.fastpath import json_body, parse_json
from churn.serving.prediction_log import encode_predictions
from churn.serving.schemas import (
    BatchResponse,
    ModelRef,
    Prediction,
    PredictionResponse,
    Schemas,
    json_route_responses,
)


def build_router(schemas: Schemas) -> APIRouter:
    """``/predict`` and ``/predict/batch`` for the records ``schemas`` describes.

    The API-key dependency is added by `create_app` when a key is configured.
    """
    router = APIRouter(
        prefix="/predict",
        tags=["predict"],
        responses=json_route_responses("Invalid record."),
    )
    record_model, batch_model = schemas.Record, schemas.BatchRequest
    id_field, model_inputs = schemas.id_field, schemas.model_inputs

    @router.post("", response_model=PredictionResponse, openapi_extra=json_body(record_model))
    async def predict(request: Request, serving: ServingDep) -> Response:
        """Probability and decision for one record."""
        record = await parse_json(request, record_model)
        traffic = serving.traffic
        scored = traffic.score(*model_inputs((record,)), (getattr(record, id_field),))
        score = scored.scores[0]
        variant = CHAMPION if scored.variants is None else scored.variants[0]
        model = traffic.model(variant)
        serving.metrics.scores.observe(score)
        serving.metrics.answered[variant].inc()
        if serving.drift is not None:
            serving.drift.add((record,))
        if serving.prediction_log is not None:
            lines = encode_predictions(
                time.time(),
                serving.request_id,
                traffic.champion,
                (record,),
                scored.scores,
                id_field=id_field,
                variants=scored.variants,
                challenger=traffic.challenger,
                shadow=scored.shadow,
            )
            serving.prediction_log.add(lines)
        answer = PredictionResponse(
            request_id=serving.request_id,
            probability=score,
            decision=score >= model.card.threshold,
            variant=variant,
            threshold=model.card.threshold,
            model_version=model.version,
            model_sha256=model.sha256,
        )
        return Response(answer.model_dump_json(), media_type="application/json")

    @router.post("/batch", response_model=BatchResponse, openapi_extra=json_body(batch_model))
    async def predict_batch(request: Request, serving: ServingDep) -> Response:
        """Probabilities and decisions for up to `CHURN_MAX_BATCH_SIZE` records."""
        records = (await parse_json(request, batch_model)).records
        limit = serving.settings.max_batch_size
        if len(records) > limit:
            problem = f"at most {limit} per batch, got {len(records)}"
            raise RequestValidationError(
                [{"loc": ("body", "records"), "msg": problem, "type": "too_long"}]
            )
        traffic = serving.traffic
        ids = [getattr(record, id_field) for record in records]
        scored = traffic.score(*model_inputs(records), ids)
        scores, variants = scored.scores, scored.variants
        champion, challenger = traffic.champion, traffic.challenger
        thresholds = {CHAMPION: champion.card.threshold}
        if challenger is not None:
            thresholds[CHALLENGER] = challenger.card.threshold
        predictions = []
        for position, score in enumerate(scores):
            variant = CHAMPION if variants is None else variants[position]
            serving.metrics.scores.observe(score)
            predictions.append(
                Prediction(
                    probability=score, decision=score >= thresholds[variant], variant=variant
                )
            )
        challenged = 0 if variants is None else variants.count(CHALLENGER)
        serving.metrics.answered[CHAMPION].inc(len(scores) - challenged)
        if challenged:
            serving.metrics.answered[CHALLENGER].inc(challenged)
        if serving.drift is not None:
            serving.drift.add(records)
        if serving.prediction_log is not None:
            lines = encode_predictions(
                time.time(),
                serving.request_id,
                champion,
                records,
                scores,
                id_field=id_field,
                variants=variants,
                challenger=challenger,
                shadow=scored.shadow,
            )
            serving.prediction_log.add(lines, records=len(scores))
        answer = BatchResponse(
            request_id=serving.request_id,
            predictions=predictions,
            threshold=champion.card.threshold,
            model_version=champion.version,
            model_sha256=champion.sha256,
            challenger=(
                ModelRef(
                    version=challenger.version,
                    sha256=challenger.sha256,
                    threshold=challenger.card.threshold,
                )
                if challenger is not None and challenged
                else None
            ),
        )
        return Response(answer.model_dump_json(), media_type="application/json")

    return router
