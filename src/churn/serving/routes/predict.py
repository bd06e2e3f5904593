"""Prediction routes: one customer, or a bounded batch.

Each scored customer becomes one line of the prediction log (when it is
on), handed to a background writer; see `churn.serving.recorder`.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError

from churn.serving.deps import ServingDep
from churn.serving.fastpath import json_body, parse_json
from churn.serving.prediction_log import encode_predictions
from churn.serving.schemas import (
    BatchRequest,
    BatchResponse,
    Customer,
    HTTPError,
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
    model = serving.model
    score = float(model.model.predict(*model_inputs([customer]))[0])
    serving.metrics.scores.observe(score)
    if serving.prediction_log is not None:
        lines = encode_predictions(time.time(), serving.request_id, model, (customer,), (score,))
        serving.prediction_log.add(lines)
    answer = PredictionResponse(
        request_id=serving.request_id,
        churn_probability=score,
        churn=score >= model.card.threshold,
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
    model = serving.model
    scores = model.model.predict(*model_inputs(batch.customers)).tolist()
    threshold = model.card.threshold
    predictions = []
    for score in scores:
        serving.metrics.scores.observe(score)
        predictions.append(Prediction(churn_probability=score, churn=score >= threshold))
    if serving.prediction_log is not None:
        lines = encode_predictions(time.time(), serving.request_id, model, batch.customers, scores)
        serving.prediction_log.add(lines, records=len(scores))
    return BatchResponse(
        request_id=serving.request_id,
        predictions=predictions,
        threshold=threshold,
        model_version=model.version,
        model_sha256=model.sha256,
    )
