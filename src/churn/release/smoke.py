"""Smoke test of a running service: what a deploy checks before and after it moves traffic.

One function, `check`, used by `churn smoke URL`: the container test, the
blue/green deploy (on the new slot before the switch, and on the public
address after it) and a person after a release all run the same checks:

1. ``/ready`` answers 200 within the ready timeout (the model is loaded and
   passed its start-up self-check);
2. ``/model`` names the model served, and, when an expected SHA-256 is given
   (from the model card that was built into the image), it is that one;
3. ``POST /predict`` with an example record (the caller's: the CLI sends
   the contract's) answers a probability in [0, 1] from that same model.

Standard library only (urllib): it runs wherever the serving package is
installed, without the training stack.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from churn.core.errors import ServiceError

if TYPE_CHECKING:
    from collections.abc import Mapping

API_KEY_HEADER = "X-API-Key"
POLL_INTERVAL_S = 0.2


@dataclass(frozen=True)
class SmokeResult:
    url: str
    model_version: str
    model_sha256: str
    probability: float  # the example record's
    ready_after_s: float

    def render(self) -> str:
        return (
            f"{self.url}: ready after {self.ready_after_s:.1f} s, model {self.model_version} "
            f"({self.model_sha256[:12]}…), example record probability {self.probability:.4f}"
        )


def _request(
    url: str,
    *,
    body: Mapping[str, object] | None = None,
    api_key: str | None = None,
    timeout: float,
) -> tuple[int, Any]:
    """One HTTP call; returns (status, decoded JSON or None). Transport errors raise OSError."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if api_key:
        headers[API_KEY_HEADER] = api_key
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    try:
        return status, json.loads(payload) if payload else None
    except json.JSONDecodeError:
        return status, payload.decode(errors="replace")[:300]


def wait_ready(url: str, *, ready_timeout: float, timeout: float) -> float:
    """Poll ``/ready`` until it answers 200; returns the seconds waited."""
    start = time.monotonic()
    last = "no answer"
    while True:
        try:
            status, body = _request(f"{url}/ready", timeout=timeout)
            if status == 200:
                return time.monotonic() - start
            last = f"HTTP {status} {body}"
        except OSError as exc:  # refused, reset, timed out: not up yet
            last = str(getattr(exc, "reason", exc))
        if time.monotonic() - start >= ready_timeout:
            raise ServiceError(f"{url}/ready: not ready after {ready_timeout:g} s ({last})")
        time.sleep(POLL_INTERVAL_S)


def check(
    url: str,
    example: Mapping[str, object],
    *,
    expect_sha256: str | None = None,
    api_key: str | None = None,
    ready_timeout: float = 60.0,
    timeout: float = 10.0,
) -> SmokeResult:
    """Run the three checks against the service at `url`, predicting ``example`` (a record
    in the API's field names); ServiceError on the first failure."""
    url = url.rstrip("/")
    ready_after = wait_ready(url, ready_timeout=ready_timeout, timeout=timeout)
    try:
        status, info = _request(f"{url}/model", timeout=timeout)
        if status != 200 or not isinstance(info, dict):
            raise ServiceError(f"{url}/model answered HTTP {status}: {info}")
        served_sha = str(info.get("sha256"))
        if expect_sha256 is not None and served_sha != expect_sha256:
            raise ServiceError(
                f"{url} serves model {served_sha[:12]}…, expected {expect_sha256[:12]}…"
            )
        status, answer = _request(f"{url}/predict", body=example, api_key=api_key, timeout=timeout)
    except OSError as exc:
        raise ServiceError(f"{url}: {getattr(exc, 'reason', exc)}") from None
    if status != 200 or not isinstance(answer, dict):
        raise ServiceError(f"{url}/predict answered HTTP {status}: {answer}")
    probability = answer.get("probability")
    if not isinstance(probability, float) or not 0.0 <= probability <= 1.0:
        raise ServiceError(f"{url}/predict: probability {probability!r} is not in [0, 1]")
    if answer.get("model_sha256") != served_sha:
        raise ServiceError(
            f"{url}/predict answered with model {answer.get('model_sha256')!r}, "
            f"/model says {served_sha!r}"
        )
    return SmokeResult(
        url=url,
        model_version=str(info.get("version")),
        model_sha256=served_sha,
        probability=probability,
        ready_after_s=ready_after,
    )
