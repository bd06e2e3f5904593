"""Prediction routes: one customer, or a bounded batch.

Each scored customer becomes one line of the prediction log (when it is
on), handed to a background writer; see `churn.serving.recorder`. It is also
counted into the live drift window (`churn.serving.drift_monitor`).

Which model answers a customer is `churn.serving.rollout`'s decision: the
active model (the champion), or the candidate for the customers an A/B test
sends to it; in shadow mode the candidate also scores the champion's
customers, for the log only.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError

from churn.abtest import CHALLENGER, CHAMPION
from churn.serving.deps import ServingDep
from churn.serving.fastpath import json_body, parse_json
from churn.serving.prediction_log import CUSTOMER_ID, encode_predictions
from churn.serving.schemas import (
    BatchRequest,
    BatchResponse,
    Customer,
    HTTPError,
    ModelRef,
    Prediction,
    PredictionResponse,
    ValidationProblems,
    model_inputs,
)

# The API-key dependency is added by `create_app` when a key is configured.
router = APIRouter(
    prefix="/predict",
    tags=["predict"],
    responses={
        400: {"model": HTTPError, "description": "Body is not decodable (e.g. not UTF-8)."},
        401: {"model": HTTPError, "description": "Missing or wrong X-API-Key (when required)."},
        413: {"model": HTTPError, "description": "Request body too large."},
        415: {"model": HTTPError, "description": "Body not sent as application/json."},
        422: {"model": ValidationProblems, "description": "Invalid customer data."},
    },
)


@router.post("", response_model=PredictionResponse, openapi_extra=json_body(Customer))
async def predict(request: Request, serving: ServingDep) -> Response:
    """Churn probability and decision for one customer."""
    customer = await parse_json(request, Customer)
    traffic = serving.traffic
    scored = traffic.score(*model_inputs([customer]), (getattr(customer, CUSTOMER_ID),))
    score = scored.scores[0]
    variant = CHAMPION if scored.variants is None else scored.variants[0]
    model = traffic.model(variant)
    serving.metrics.scores.observe(score)
    serving.metrics.answered[variant].inc()
    if serving.drift is not None:
        serving.drift.add((customer,))
    if serving.prediction_log is not None:
        lines = encode_predictions(
            time.time(),
            serving.request_id,
            traffic.champion,
            (customer,),
            scored.scores,
            variants=scored.variants,
            challenger=traffic.challenger,
            shadow=scored.shadow,
        )
        serving.prediction_log.add(lines)
    answer = PredictionResponse(
        request_id=serving.request_id,
        churn_probability=score,
        churn=score >= model.card.threshold,
        variant=variant,
        threshold=model.card.threshold,
        model_version=model.version,
        model_sha256=model.sha256,
    )
    return Response(answer.model_dump_json(), media_type="application/json")


@router.post("/batch")
async def predict_batch(batch: BatchRequest, serving: ServingDep) -> BatchResponse:
    """Churn probabilities and decisions for up to `CHURN_MAX_BATCH_SIZE` customers."""
    limit = serving.settings.max_batch_size
    if len(batch.customers) > limit:
        problem = f"at most {limit} per batch, got {len(batch.customers)}"
        raise RequestValidationError(
            [{"loc": ("body", "customers"), "msg": problem, "type": "too_long"}]
        )
    traffic = serving.traffic
    customer_ids = [getattr(customer, CUSTOMER_ID) for customer in batch.customers]
    scored = traffic.score(*model_inputs(batch.customers), customer_ids)
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
            Prediction(churn_probability=score, churn=score >= thresholds[variant], variant=variant)
        )
    challenged = 0 if variants is None else variants.count(CHALLENGER)
    serving.metrics.answered[CHAMPION].inc(len(scores) - challenged)
    if challenged:
        serving.metrics.answered[CHALLENGER].inc(challenged)
    if serving.drift is not None:
        serving.drift.add(batch.customers)
    if serving.prediction_log is not None:
        lines = encode_predictions(
            time.time(),
            serving.request_id,
            champion,
            batch.customers,
            scores,
            variants=variants,
            challenger=challenger,
            shadow=scored.shadow,
        )
        serving.prediction_log.add(lines, records=len(scores))
    return BatchResponse(
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
