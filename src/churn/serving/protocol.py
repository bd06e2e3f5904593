"""HTTP/1.1 limits uvicorn's httptools protocol lacks: request-head size and read time.

uvicorn parses with httptools (fast: the service's throughput depends on it)
but puts no bound on the request head, and no deadline on reading a request:
a 64 MB header is buffered and parsed (memory grows with it, the event loop
stalls), and a client that sends half a request, or connects and sends
nothing, holds its connection (and a file descriptor) for as long as it
likes. h11 has a head limit (``h11_max_incomplete_event_size``) but no read
deadline either, and is slower.

`guarded_protocol` returns a subclass of uvicorn's ``HttpToolsProtocol`` with
both, enforced in the protocol where the bytes arrive (an ASGI middleware
only sees a request once its head is complete):

- **head size**: the bytes received while a request head (request line and
  headers) is incomplete are counted; past ``max_head_bytes`` the client gets
  ``431 Request Header Fields Too Large`` and the connection is closed. A
  read is at most 256 KiB, so memory stays within the limit plus one read.
- **read deadline**: from a connection's opening, or from the first byte of
  each later request, the whole request (head and body) must arrive within
  ``request_timeout_s``; otherwise the client gets ``408 Request Timeout``
  (when no response has started) and the connection is closed; a connection
  that sent nothing at all is closed without an answer. Idle time between
  requests stays uvicorn's keep-alive timeout.

Written against uvicorn's protocol callbacks (``data_received``,
``on_headers_complete``, ``on_message_complete``, ``connection_lost``), which
uvicorn's own subclasses and httptools' parser rely on; the uvicorn version is
pinned in ``uv.lock`` and ``tests/security`` attacks a real ``churn serve``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

DEFAULT_MAX_HEAD_BYTES = 32 * 1024
DEFAULT_REQUEST_TIMEOUT_S = 10.0


def _response(status: int, reason: str, message: str) -> bytes:
    body = message.encode()
    return (
        f"HTTP/1.1 {status} {reason}\r\n"
        "content-type: text/plain; charset=utf-8\r\n"
        f"content-length: {len(body)}\r\n"
        "connection: close\r\n\r\n"
    ).encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with a request-head size limit and a request read deadline."""

    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._reading_head = True  # waiting for (the rest of) a request line and headers
        self._head_bytes = 0
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # A connection that sends nothing gets the same deadline as a slow request.
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_head:
            self._head_bytes += len(data)
            if self._deadline is None:
                self._arm_deadline()
        super().data_received(data)
        # Still in the head after this read (a head that ended in it reset the count).
        if (
            self._reading_head
            and self._head_bytes > self.max_head_bytes
            and not self.transport.is_closing()
        ):
            self._refuse(431, "Request Header Fields Too Large", "request head too large")

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        self._cancel_deadline()
        super().on_message_complete()

    def _arm_deadline(self) -> None:
        self._cancel_deadline()
        self._deadline = self.loop.call_later(self.request_timeout_s, self._on_deadline)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _on_deadline(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._reading_head and self._head_bytes == 0:
            # Opened and never used (a browser's or a balancer's pre-connection, or a
            # slowloris): closed without an answer nobody asked for.
            self.transport.close()
            return
        self._refuse(408, "Request Timeout", "request not received in time")

    def _refuse(self, status: int, reason: str, message: str) -> None:
        """Answer ``status`` unless a response has started on this connection, then close it.

        A request whose handler is waiting for the rest of its body is told the
        client left; its answer, if any, goes nowhere.
        """
        cycle = self.cycle
        # A queued (pipelined) request means an earlier one may be answering: no 4xx
        # into the middle of its response, only the close.
        idle = cycle is None or cycle.response_complete or not cycle.response_started
        if idle and not self.pipeline:
            self.transport.write(_response(status, reason, message))
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True
            cycle.message_event.set()
        self.logger.warning("%s: %s, connection closed", self.client, message)
        self.transport.close()


def guarded_protocol(
    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES,
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S,
) -> type[GuardedHttpToolsProtocol]:
    """A `GuardedHttpToolsProtocol` class with these limits, for ``uvicorn.run(http=...)``."""
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"max_head_bytes": max_head_bytes, "request_timeout_s": request_timeout_s},
    )
