"""The service in this process: requests through `httpx.ASGITransport`, no port, no thread.

`AppClient` enters the app's lifespan (the model loads, the prediction log
opens) and leaves it on exit (the log is written and closed), as uvicorn
does; between the two it sends requests synchronously, each on the
client's own event loop. Route and validation tests use it; tests of what
only a real server shows (start-up, the port, chunked bodies, signals) run
`churn serve` instead (`tests.support.servers`).
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import Any

import httpx
from fastapi import FastAPI

from tests.support.servers import metric_value


class AppClient:
    """``with AppClient(create_app(...)) as client: client.post("/predict", json=...)``."""

    def __init__(self, app: FastAPI, **kwargs: Any) -> None:
        self.app = app
        self._kwargs = kwargs
        self._loop = asyncio.new_event_loop()
        self._lifespan: AbstractAsyncContextManager[Any] | None = None
        self._client: httpx.AsyncClient | None = None

    def __enter__(self) -> AppClient:
        self._lifespan = self.app.router.lifespan_context(self.app)
        self._loop.run_until_complete(self._lifespan.__aenter__())
        transport = httpx.ASGITransport(app=self.app)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://app", **self._kwargs)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            if self._client is not None:
                self._loop.run_until_complete(self._client.aclose())
            if self._lifespan is not None:
                self._loop.run_until_complete(self._lifespan.__aexit__(exc_type, exc, traceback))
        finally:
            self._loop.close()

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        assert self._client is not None, "use AppClient in a with block"
        return self._loop.run_until_complete(self._client.request(method, url, **kwargs))

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", url, **kwargs)

    def metric(self, series: str) -> float:
        """One series of /metrics (``name{labels}`` exactly as exposed)."""
        return metric_value(self.get("/metrics").text, series)
