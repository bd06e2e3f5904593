"""Real servers on 127.0.0.1 for the tests: `churn serve` and an S3-compatible store.

Each is a process of its own, in its own process group, started on a free
port and stopped with SIGTERM (SIGKILL after 10 s). The fixtures that use
these live in ``tests/integration/conftest.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent
CHURN = str(BIN / "churn")
MOTO_SERVER = str(BIN / "moto_server")
START_TIMEOUT_S = 30
S3_CREDENTIALS = {
    # moto accepts any credentials; real-looking names keep botocore's checks quiet.
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# The prediction log writes within 0.1 s: tests wait for it, not for the default second.
FAST_LOG = {"CHURN_PREDICTION_LOG_FLUSH_S": "0.1"}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process(process: subprocess.Popen[str]) -> None:
    """SIGTERM the process group, SIGKILL after 10 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Poll ``condition`` every 50 ms; fail the test naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def log_env(directory: Path, **settings: str) -> dict[str, str]:
    """Settings that turn the prediction log on in ``directory``: ``rotate_bytes="4096"``
    sets CHURN_PREDICTION_LOG_ROTATE_BYTES, and so on."""
    env = {"CHURN_PREDICTION_LOG_DIR": str(directory), **FAST_LOG}
    env.update({f"CHURN_PREDICTION_LOG_{name.upper()}": value for name, value in settings.items()})
    return env


def metric_value(text: str, series: str) -> float:
    """The value of one series (``name{labels}`` exactly as exposed) in a /metrics text."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {series} in the metrics")


# -- `churn serve` -------------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text()

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)  # type: ignore[arg-type]

    def metric(self, series: str) -> float:
        with self.client() as client:
            return metric_value(client.get("/metrics").text, series)


def start_server(model_dir: Path, env: dict[str, str] | None = None) -> Server:
    """`churn serve` on a free loopback port; returns once /ready answers 200.

    Its output goes to a file (a pipe nobody reads would block the server once
    full); `Server.log()` reads it.
    """
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="churn-serve-", suffix=".log")[1])
    command = [CHURN, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "--model-dir", str(model_dir)],
            env={**os.environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"churn serve exited {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/ready", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    stop_server(server)
    raise RuntimeError(f"churn serve not ready within {START_TIMEOUT_S} s")


def stop_server(server: Server) -> None:
    stop_process(server.process)


def serve_and_fail(
    model_dir: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`churn serve` expected to refuse to start (port 1: it must stop before binding)."""
    return subprocess.run(
        [CHURN, "serve", "--port", "1", "--model-dir", str(model_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "NO_COLOR": "1", "TERM": "dumb", **(env or {})},
    )


# -- S3: moto's standalone server, a real HTTP S3 endpoint on loopback ---------------


@dataclass
class S3Server:
    """An S3-compatible server (``moto_server``) in its own process."""

    endpoint_url: str
    process: subprocess.Popen[str]
    log_file: Path

    @property
    def env(self) -> dict[str, str]:
        """Credentials and region for boto3/s3fs clients (dvc-s3, MLflow)."""
        return dict(S3_CREDENTIALS)

    def client(self) -> Any:
        """A boto3 S3 client of this server."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
        )

    def create_bucket(self, name: str) -> str:
        """Create a bucket (idempotent) and return its name."""
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        stop_process(self.process)


def start_s3_server() -> S3Server:
    """``moto_server`` on a free loopback port; returns once it answers HTTP."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="moto-server-", suffix=".log")[1])
    with log.open("w") as out:
        process = subprocess.Popen(
            [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    server = S3Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto_server exited {process.returncode}:\n{log.read_text()}")
        try:
            httpx.get(server.endpoint_url, timeout=1)
            return server
        except httpx.TransportError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"moto_server not answering within {START_TIMEOUT_S} s")
