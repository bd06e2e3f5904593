"""Protocol limits and request hygiene: their settings, and the ASGI guard.

`LimitSettings` (``CHURN_*`` variables, `churn serve` flags) holds the limits
of the HTTP layer (`churn.serving.protocol`: request-head size, read
deadline, keep-alive) and of the app (`RequestGuard`: requests in flight).

`RequestGuard`, the outermost middleware but the metrics', does two things
to every HTTP request, in one pass over its headers:

- **a request id the server makes**: a fresh random id replaces whatever the
  client sent as ``X-Request-ID`` (the routes, the prediction log and its
  feedback join read that header, so they all see the server's id), and
  every response carries it back in ``X-Request-ID``. A client's own id, when
  it is a safe token, is kept beside it as ``X-Client-Request-ID`` (in the
  request, for the routes, and echoed in the response), never as the id: two
  clients' ids can collide, the server's cannot.
- **load shedding**: beyond ``max_in_flight`` requests in progress the answer
  is ``503`` with ``Retry-After`` at once, instead of a queue that grows
  without bound; ``/predict/batch`` has its own, smaller limit, so batches
  cannot take the event loop from single predictions. ``/health``,
  ``/ready`` and ``/metrics`` are never shed (probes and scrapes must see a
  loaded service as loaded, not as down).
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from churn.serving.protocol import DEFAULT_MAX_HEAD_BYTES, DEFAULT_REQUEST_TIMEOUT_S

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"
CLIENT_REQUEST_ID_HEADER = b"x-client-request-id"
# The same token rule as the feedback's request_id (churn.serving.schemas).
SAFE_TOKEN = re.compile(rb"^[A-Za-z0-9._-]{1,64}\Z")
BATCH_PATH = "/predict/batch"
NEVER_SHED = frozenset({"/health", "/ready", "/metrics"})


class LimitSettings(BaseSettings):
    """Limits of the HTTP layer and of requests in flight, from ``CHURN_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="CHURN_", frozen=True, extra="ignore")

    max_header_bytes: int = Field(
        default=DEFAULT_MAX_HEAD_BYTES,
        ge=1024,
        le=16 << 20,
        description="Largest request head (request line and headers); larger gets 431 and "
        "the connection is closed.",
    )
    request_timeout_s: float = Field(
        default=DEFAULT_REQUEST_TIMEOUT_S,
        gt=0,
        le=600,
        description="A request (head and body) must arrive within this many seconds of the "
        "connection's opening or of its first byte; otherwise 408 and the connection closes.",
    )
    keep_alive_s: int = Field(
        default=5, ge=1, le=600, description="Close a connection idle this long between requests."
    )
    max_in_flight: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Requests in progress at once; more get 503 with Retry-After at once.",
    )
    max_batch_in_flight: int = Field(
        default=1,
        ge=1,
        le=100_000,
        description="/predict/batch requests in progress at once (within max_in_flight).",
    )
    retry_after_s: int = Field(
        default=1, ge=1, le=3600, description="The Retry-After of a shed request (seconds)."
    )


def new_request_id() -> str:
    """128 random bits as 32 hex digits (the format of ``uuid4().hex``, a tenth of its cost)."""
    return os.urandom(16).hex()


class RequestGuard:
    """Server-made request ids and in-flight limits; see the module's docstring."""

    def __init__(self, app: ASGIApp, limits: LimitSettings) -> None:
        self.app = app
        self.max_in_flight = limits.max_in_flight
        self.max_batch_in_flight = limits.max_batch_in_flight
        self.in_flight = 0
        self.batch_in_flight = 0
        body = json.dumps({"detail": "too many requests in progress, retry later"}).encode()
        self._shed_body = body
        self._shed_headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"retry-after", b"%d" % limits.retry_after_s),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id().encode()
        client_id = None
        headers = [(REQUEST_ID_HEADER, request_id)]
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                client_id = value if SAFE_TOKEN.match(value) else None
            elif name != CLIENT_REQUEST_ID_HEADER:  # only the server says what the client sent
                headers.append((name, value))
        extra = [(REQUEST_ID_HEADER, request_id)]
        if client_id is not None:
            headers.append((CLIENT_REQUEST_ID_HEADER, client_id))
            extra.append((CLIENT_REQUEST_ID_HEADER, client_id))
        scope["headers"] = headers

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        path = scope["path"]
        if path in NEVER_SHED:
            await self.app(scope, receive, send_with_id)
            return
        batch = path == BATCH_PATH
        if self.in_flight >= self.max_in_flight or (
            batch and self.batch_in_flight >= self.max_batch_in_flight
        ):
            await send_with_id(
                {"type": "http.response.start", "status": 503, "headers": self._shed_headers}
            )
            await send_with_id({"type": "http.response.body", "body": self._shed_body})
            return
        self.in_flight += 1
        self.batch_in_flight += batch
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.in_flight -= 1
            self.batch_in_flight -= batch
