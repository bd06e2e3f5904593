"""Credentials by role (issue 13): each kind of route takes its own key, and none falls back.

Against a real `churn serve` on 127.0.0.1, on a small real model. The keys:
prediction (``CHURN_API_KEY``), feedback (``CHURN_FEEDBACK_API_KEY``), admin
(``CHURN_ADMIN_API_KEY``) and informational routes (``CHURN_INFO_API_KEY``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from churn.serving.schemas import Schemas
from tests.support.servers import (
    Server,
    log_env,
    serve_and_fail,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.security

KEYS = {
    "predict": "p" * 20,
    "feedback": "f" * 20,
    "admin": "a" * 20,
    "info": "i" * 20,
}
ALL_KEYS = {
    "CHURN_API_KEY": KEYS["predict"],
    "CHURN_FEEDBACK_API_KEY": KEYS["feedback"],
    "CHURN_ADMIN_API_KEY": KEYS["admin"],
    "CHURN_INFO_API_KEY": KEYS["info"],
    "CHURN_ADMIN_ENABLED": "true",
}
INFO_ROUTES = ("/model", "/metrics", "/docs", "/redoc", "/openapi.json")


@pytest.fixture(scope="module")
def guarded(small_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with every role's key set, the log and /admin on."""
    log_dir = tmp_path_factory.mktemp("roles-log")
    server = start_server(small_model_dir, {**ALL_KEYS, **log_env(log_dir)})
    yield server
    stop_server(server)


def _headers(role: str | None) -> dict[str, str]:
    return {} if role is None else {"X-API-Key": KEYS[role]}


def test_each_route_takes_its_own_key_and_no_other(guarded: Server, api: Schemas) -> None:
    record = api.example
    feedback = {api.id_field: record[api.id_field], "outcome": True}
    requests = {  # route: (method, path, body)
        "predict": ("POST", "/predict", record),
        "feedback": ("POST", "/feedback", feedback),
        "admin": ("GET", "/admin/models", None),
        "info": ("GET", "/model", None),
    }
    ok = {"predict": 200, "feedback": 202, "admin": 200, "info": 200}
    with guarded.client() as client:
        for route, (method, path, body) in requests.items():
            for role in (None, *KEYS):
                status = client.request(method, path, json=body, headers=_headers(role)).status_code
                expected = ok[route] if role == route else 401
                assert status == expected, (route, role, status)


def test_informational_routes_are_behind_their_key(guarded: Server) -> None:
    with guarded.client() as client:
        for path in INFO_ROUTES:
            for role in (None, "predict", "admin", "feedback"):
                assert client.get(path, headers=_headers(role)).status_code == 401, (path, role)
            assert client.get(path, headers=_headers("info")).status_code == 200, path
        for path in ("/health", "/ready"):  # probes stay open
            assert client.get(path).status_code == 200


def test_admin_enabled_without_its_key_refuses_to_start(small_model_dir: Path) -> None:
    for env in (
        {"CHURN_ADMIN_ENABLED": "true"},
        {"CHURN_ADMIN_ENABLED": "true", "CHURN_API_KEY": KEYS["predict"]},  # no fallback
        {  # nor the same key under two roles
            "CHURN_ADMIN_ENABLED": "true",
            "CHURN_API_KEY": KEYS["predict"],
            "CHURN_ADMIN_API_KEY": KEYS["predict"],
        },
    ):
        result = serve_and_fail(small_model_dir, env)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "CHURN_ADMIN_API_KEY" in lines[0], result.stderr


def test_feedback_never_takes_the_prediction_key(
    small_model_dir: Path, api: Schemas, tmp_path: Path
) -> None:
    """With a prediction key and no feedback key, /feedback is not there at all."""
    env = {"CHURN_API_KEY": KEYS["predict"], **log_env(tmp_path / "log")}
    server = start_server(small_model_dir, env)
    try:
        body = {api.id_field: api.example[api.id_field], "outcome": True}
        with server.client(headers=_headers("predict")) as client:
            assert client.post("/feedback", json=body).status_code == 404
            assert client.post("/predict", json=api.example).status_code == 200
            paths = client.get("/openapi.json").json()["paths"]
    finally:
        stop_server(server)
    assert "/feedback" not in paths and "/predict" in paths


def test_openapi_lists_only_the_routes_that_are_mounted(guarded: Server, server: Server) -> None:
    with guarded.client(headers=_headers("info")) as client:
        everything = set(client.get("/openapi.json").json()["paths"])
    with server.client() as client:
        plain = set(client.get("/openapi.json").json()["paths"])
    assert {"/feedback", "/admin/models", "/predict"} <= everything
    assert "/predict" in plain
    assert not any(path.startswith(("/admin", "/feedback")) for path in plain), plain


@pytest.fixture(scope="module")
def server(small_model_dir: Path) -> Iterator[Server]:
    """A server with default settings: no log, no /admin, no keys."""
    running = start_server(small_model_dir)
    yield running
    stop_server(running)
