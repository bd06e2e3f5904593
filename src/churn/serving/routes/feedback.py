"""``POST /feedback``: the true outcome of an earlier prediction, for performance monitoring.

The route exists only when the prediction log is on (``CHURN_PREDICTION_LOG_DIR``).

The outcome is appended to the log's ``feedback`` stream; nothing is looked
up here (the service keeps no index of past predictions). `churn.monitoring.predlog.join`
pairs feedback with predictions later, offline, and `churn performance`
scores them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fastapi import APIRouter, HTTPException, Request, status

from churn.monitoring.predlog import FeedbackRecord
from churn.serving.deps import FeedbackLogDep, MetricsDep
from churn.serving.fastpath import json_body, parse_json
from churn.serving.prediction_log import encode_feedback
from churn.serving.schemas import (
    FeedbackAcceptedBase,
    HTTPError,
    Schemas,
    json_route_responses,
)

RETRY_AFTER_S = 1


def build_router(schemas: Schemas) -> APIRouter:
    """``POST /feedback`` for the records ``schemas`` describes (named by its id field).

    The API-key dependency is added by `create_app` when a key is configured.
    """
    router = APIRouter(
        prefix="/feedback",
        tags=["feedback"],
        responses=json_route_responses("Invalid feedback.")
        | {
            503: {
                "model": HTTPError,
                "description": "The outcome was not stored: the feedback log is full or "
                "cannot be written (retry after Retry-After s).",
            },
        },
    )
    feedback_model, accepted_model, id_field = (
        schemas.Feedback,
        schemas.FeedbackAccepted,
        schemas.id_field,
    )

    @router.post(
        "",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=accepted_model,
        openapi_extra=json_body(feedback_model),
    )
    async def feedback(
        request: Request, feedback_log: FeedbackLogDep, metrics: MetricsDep
    ) -> FeedbackAcceptedBase:
        """Record the true outcome of a prediction named by request id or record id.

        202: written to the feedback log (fsync'd) before this answer; 503 if it could
        not be. The first outcome reported for a prediction counts; a later, different
        one is kept as a correction (`churn.monitoring.predlog.join`).
        """
        body = await parse_json(request, feedback_model)
        received_at = datetime.now(UTC)
        record = FeedbackRecord(
            received_at=received_at,
            request_id=body.request_id,
            id=body.record_id,
            outcome=body.outcome,
            # Stored in UTC, like every time in the log.
            observed_at=body.observed_at or received_at,  # in UTC (the schema converts)
        )
        # Written (and fsync'd) before the answer: a 202 means the outcome is stored.
        stored = await asyncio.to_thread(feedback_log.write_now, encode_feedback(record))
        if not stored:
            problem = "full" if stored is None else "not writable"
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"the feedback log is {problem}; the outcome was not stored, retry shortly",
                headers={"Retry-After": str(RETRY_AFTER_S)},
            )
        metrics.feedback.labels("true" if body.outcome else "false").inc()
        return accepted_model(
            request_id=record.request_id,
            outcome=record.outcome,
            observed_at=record.observed_at,
            received_at=record.received_at,
            **{id_field: record.id},
        )

    return router
