"""The generated HAProxy configuration (deploy/targets/podman.sh) limits hostile clients.

HAProxy runs in the foreground on 127.0.0.1 with the configuration the podman
target writes, in front of a real `churn serve` (both slots point at it):
a slow request gets 408 at ``timeout http-request``, and one client address
cannot hold more than ``DEPLOY_CLIENT_MAX_CONN`` connections.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.paths import REPO
from tests.support.servers import Server, free_port, start_server, stop_process, stop_server

pytestmark = [
    pytest.mark.security,
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs haproxy"),
]

MAX_CONN_PER_CLIENT = 5


def _config(state_dir: Path, port: int, backend_port: int) -> str:
    env = {
        **os.environ,
        "DEPLOY_STATE_DIR": str(state_dir),
        "DEPLOY_PORT": str(port),
        "BLUE_PORT": str(backend_port),
        "GREEN_PORT": str(backend_port),
        "DEPLOY_REQUEST_TIMEOUT": "1s",
        "DEPLOY_CLIENT_MAX_CONN": str(MAX_CONN_PER_CLIENT),
    }
    script = REPO / "deploy" / "targets" / "podman.sh"
    return subprocess.run(
        ["bash", "-c", f'source "{script}" && haproxy_config "" disabled'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout


@pytest.fixture(scope="module")
def proxy(small_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    backend: Server = start_server(small_model_dir)
    state = tmp_path_factory.mktemp("haproxy")
    port = free_port()
    config = state / "haproxy.cfg"
    config.write_text(_config(state, port, int(backend.url.rsplit(":", 1)[1])))
    process = subprocess.Popen(
        ["haproxy", "-db", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                if httpx.get(f"{url}/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "HAProxy did not answer"
            assert process.poll() is None, "HAProxy exited"
            time.sleep(0.1)
        yield url
    finally:
        stop_process(process)
        stop_server(backend)


def _connect(url: str) -> socket.socket:
    port = int(url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_the_configuration_has_the_limits(tmp_path: Path) -> None:
    text = _config(tmp_path, 8080, 8081)
    assert "timeout http-request 1s" in text
    assert "sc_conn_cur(0) gt 5" in text
    assert "sc_http_req_rate(0)" in text


def test_a_slow_request_gets_408_from_haproxy(proxy: str) -> None:
    with _connect(proxy) as sock:
        start = time.monotonic()
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        answer = sock.recv(4096)
        elapsed = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408"), answer[:60]
    assert elapsed < 3


def test_one_client_cannot_hold_more_than_its_connections(proxy: str) -> None:
    held = [_connect(proxy) for _ in range(MAX_CONN_PER_CLIENT)]
    try:
        time.sleep(0.2)
        try:  # refused: reset at once, or closed without an answer
            with _connect(proxy) as extra:
                extra.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = extra.recv(4096)
        except (ConnectionResetError, BrokenPipeError):
            answer = b""
        assert answer == b"", answer[:60]
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(f"{proxy}/health", timeout=5).status_code == 200
