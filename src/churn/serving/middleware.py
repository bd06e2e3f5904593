"""Pure-ASGI middleware: Prometheus request metrics and a request-body size limit.

Written against the ASGI interface rather than Starlette's
``BaseHTTPMiddleware``, which adds a task and a memory stream per request and
costs a large share of a sub-millisecond prediction.
"""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from churn.monitoring.abtest import CHALLENGER, CHAMPION

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
SCORE_BUCKETS = tuple(round(0.1 * i, 1) for i in range(1, 11))


class ServiceMetrics:
    """The service's Prometheus metrics, in their own registry (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "churn_http_requests_total",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "churn_http_request_duration_seconds",
            "Time from request start to the last response byte, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.scores = Histogram(
            "churn_prediction_score",
            "Predicted probabilities of the positive class.",
            buckets=SCORE_BUCKETS,
            registry=self.registry,
        )
        self.model = Gauge(
            "churn_model_info",
            "The served model (value is always 1).",
            ["version", "sha256", "estimator"],
            registry=self.registry,
        )
        # The prediction log (churn.serving.prediction_log), by stream:
        # "predictions" or "feedback". Alert on dropped and upload errors.
        self.log_records = Counter(
            "churn_prediction_log_records_total",
            "Records written (and fsync'd) to the prediction log.",
            ["stream"],
            registry=self.registry,
        )
        self.log_dropped = Counter(
            "churn_prediction_log_dropped_total",
            "Records not logged: the buffer was full, or the write failed.",
            ["stream", "reason"],
            registry=self.registry,
        )
        self.log_flush_errors = Counter(
            "churn_prediction_log_flush_errors_total",
            "Failed writes, rotations or closes of log files.",
            ["stream"],
            registry=self.registry,
        )
        self.log_upload_errors = Counter(
            "churn_prediction_log_upload_errors_total",
            "Failed uploads of complete log files to S3 (the file stays and is retried).",
            ["stream"],
            registry=self.registry,
        )
        self.log_waiting = Gauge(
            "churn_prediction_log_buffered_records",
            "Records waiting in memory to be written.",
            ["stream"],
            registry=self.registry,
        )
        self.feedback = Counter(
            "churn_feedback_received_total",
            "Outcomes accepted on /feedback, by outcome (true: the positive class was observed).",
            ["outcome"],
            registry=self.registry,
        )
        # Live drift (churn.serving.drift_monitor), recomputed when /metrics
        # is read. No verdict yet (no drift profile, too few records): the
        # verdict is NaN, which no comparison in an alert rule matches.
        self.feature_drift = Gauge(
            "churn_feature_drift",
            "Population stability index of each feature, recent records against the training data.",
            ["feature"],
            registry=self.registry,
        )
        self.drift_detected = Gauge(
            "churn_drift_detected",
            "1 while the recent records have drifted from the training data (the "
            "model's drift rule), 0 if not, NaN before a verdict.",
            registry=self.registry,
        )
        self.drift_detected.set(math.nan)
        self.drift_window = Gauge(
            "churn_drift_window_samples",
            "Records in the window the drift metrics were computed on.",
            registry=self.registry,
        )
        # Rollouts (churn.serving.rollout): the two model slots, what changes
        # them, and who answered. Children the hot path uses are made once.
        self.model_slots = Gauge(
            "churn_model_slot_info",
            "The models loaded, by slot (active, standby) and the standby's role "
            "(candidate, previous); value is always 1.",
            ["slot", "role", "version", "sha256"],
            registry=self.registry,
        )
        self.model_switches = Counter(
            "churn_model_switches_total",
            "Changes of the active model: switch (to the candidate) or rollback.",
            ["action"],
            registry=self.registry,
        )
        self.model_loads = Counter(
            "churn_model_loads_total",
            "Models loaded into the standby slot at run time, by outcome (loaded, failed).",
            ["outcome"],
            registry=self.registry,
        )
        answered = Counter(
            "churn_predictions_total",
            "Records scored, by the variant that answered (champion, or the A/B "
            "test's challenger).",
            ["variant"],
            registry=self.registry,
        )
        self.answered = {variant: answered.labels(variant) for variant in (CHAMPION, CHALLENGER)}
        self.shadow_scored = Counter(
            "churn_shadow_predictions_total",
            "Records the candidate scored in shadow mode (logged, not returned).",
            registry=self.registry,
        )
        self.shadow_failures = Counter(
            "churn_shadow_failures_total",
            "Shadow scorings that failed (the response was not affected).",
            registry=self.registry,
        )


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # Labelled children, looked up once per (route, method, status):
        # `labels()` takes a lock and builds a key on every call.
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The route template, not the raw path, keeps label cardinality bounded.
            route = getattr(scope.get("route"), "path", "unmatched")
            key = (route, scope["method"], status)
            if (children := self._children.get(key)) is None:
                children = self._children[key] = (
                    self.metrics.requests.labels(route, scope["method"], str(status)),
                    self.metrics.latency.labels(route),
                )
            children[0].inc()
            children[1].observe(time.perf_counter() - start)


class BodySizeLimitMiddleware:
    """413 for request bodies over ``limit`` bytes.

    A declared Content-Length is checked up front and, when within the limit,
    the request passes untouched (the HTTP parser delivers no more than it
    declares); only bodies of unknown length (chunked) are counted as they
    arrive. Cheaper than a general limit that wraps every request.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.limit:
                    await self._reject(send)
                else:
                    await self.app(scope, receive, send)
                return
        await self._counted(scope, receive, send)

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Past the limit: answer 413 at once, tell the app the client left, drop its answer."""
        received = 0
        responded = rejected = False

        async def counting_receive() -> Message:
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received <= self.limit:
                return message
            rejected = True
            if not responded:
                await self._reject(send)
            return {"type": "http.disconnect"}

        async def guarded_send(message: Message) -> None:
            nonlocal responded
            if rejected:
                return
            responded = responded or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counting_receive, guarded_send)

    async def _reject(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body larger than {self.limit} bytes"}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
