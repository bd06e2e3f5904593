"""``POST /feedback``: the true outcome of an earlier prediction, for performance monitoring.

The route exists only when the prediction log is on (``CHURN_PREDICTION_LOG_DIR``).

The outcome is appended to the log's ``feedback`` stream; nothing is looked
up here (the service keeps no index of past predictions). `churn.predlog.join`
pairs feedback with predictions later, offline, and `churn performance`
scores them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, status

from churn.predlog import FeedbackRecord
from churn.serving.deps import FeedbackLogDep, MetricsDep
from churn.serving.fastpath import json_body, parse_json
from churn.serving.prediction_log import encode_feedback
from churn.serving.schemas import Feedback, FeedbackAccepted, HTTPError, ValidationProblems

RETRY_AFTER_S = 1

# The API-key dependency is added by `create_app` when a key is configured.
router = APIRouter(
    prefix="/feedback",
    tags=["feedback"],
    responses={
        400: {"model": HTTPError, "description": "Body is not decodable (e.g. not UTF-8)."},
        401: {"model": HTTPError, "description": "Missing or wrong X-API-Key (when required)."},
        413: {"model": HTTPError, "description": "Request body too large."},
        415: {"model": HTTPError, "description": "Body not sent as application/json."},
        422: {"model": ValidationProblems, "description": "Invalid feedback."},
        503: {
            "model": HTTPError,
            "description": "The feedback log's buffer is full (retry after Retry-After s).",
        },
    },
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=FeedbackAccepted,
    openapi_extra=json_body(Feedback),
)
async def feedback(
    request: Request, feedback_log: FeedbackLogDep, metrics: MetricsDep
) -> FeedbackAccepted:
    """Record whether a customer churned, for a prediction named by request or customer id.

    202: queued for the feedback log (written within a second or so).
    """
    body = await parse_json(request, Feedback)
    received_at = datetime.now(UTC)
    record = FeedbackRecord(
        received_at=received_at,
        request_id=body.request_id,
        customer_id=body.customer_id,
        churned=body.churned,
        # Stored in UTC, like every time in the log.
        observed_at=(body.observed_at or received_at).astimezone(UTC),
    )
    if not feedback_log.add(encode_feedback(record)):
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the feedback log is full; retry shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    metrics.feedback.labels("true" if body.churned else "false").inc()
    return FeedbackAccepted(**record.model_dump())
