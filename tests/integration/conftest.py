"""Fixtures that run real servers on 127.0.0.1: `churn serve` and an S3-compatible store."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline

from churn import train
from churn.data import clean
from churn.params import Params
from churn.prepare import run as prepare
from tests.conftest import REPO

BIN = Path(sys.executable).parent
CHURN = str(BIN / "churn")
START_TIMEOUT_S = 30


# -- The project in a temporary git repository, as a fresh clone has it ------------


@dataclass(frozen=True)
class Repo:
    root: Path
    env: dict[str, str]

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            args,
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / "dvc"), *args, check=check)


def _project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    return [name for name in listed if name and (REPO / name).is_file()]


def copy_project(root: Path) -> Repo:
    """A git repository at `root` holding the project's files as they are now, committed.

    Nothing is reproduced yet: no DVC cache, no stage outputs, no MLflow store.
    """
    for name in _project_files():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CHURN_"))}
    env |= {
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "GX_ANALYTICS_ENABLED": "false",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }  # fmt: skip
    project = Repo(root, env)
    project.run("git", "init", "--quiet", "--initial-branch=main")
    project.run("git", "add", "--all")
    project.run("git", "commit", "--quiet", "--message", "copy")
    return project


@dataclass(frozen=True)
class TrainedModel:
    directory: Path
    pipeline: Pipeline
    test: pd.DataFrame


@pytest.fixture(scope="session")
def trained_model(
    raw_real: pd.DataFrame, params: Params, tmp_path_factory: pytest.TempPathFactory
) -> TrainedModel:
    """The default model trained on the real split, written as `train` writes it (no MLflow)."""
    train_split, test_split = (clean(part) for part in prepare(raw_real, params.prepare))
    pipeline, metrics = train.run(train_split, params.train)
    directory = tmp_path_factory.mktemp("model")
    train.write_model(
        pipeline,
        train_split,
        directory,
        params=params.train,
        drift=params.drift,
        metrics=metrics,
        data={},
    )
    return TrainedModel(directory, pipeline, test_split)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    log_file: Path

    def log(self) -> str:
        return self.log_file.read_text()

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10, **kwargs)  # type: ignore[arg-type]


def start_server(model_dir: Path, env: dict[str, str] | None = None) -> Server:
    """`churn serve` on a free loopback port; returns once /ready answers 200.

    Its output goes to a file (a pipe nobody reads would block the server once
    full); `Server.log()` reads it.
    """
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="churn-serve-", suffix=".log")[1])
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                CHURN,
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--model-dir",
                str(model_dir),
            ],
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


@pytest.fixture
def serve() -> Iterator[Callable[..., Server]]:
    """Start servers with given settings; all are stopped when the test ends."""
    started: list[Server] = []

    def start(model_dir: Path, env: dict[str, str] | None = None) -> Server:
        started.append(start_server(model_dir, env))
        return started[-1]

    yield start
    for server in started:
        stop_server(server)


@pytest.fixture(scope="module")
def server(trained_model: TrainedModel) -> Iterator[Server]:
    """One server with default settings, shared by a module's tests."""
    running = start_server(trained_model.directory)
    yield running
    stop_server(running)


# -- S3: moto's standalone server, a real HTTP S3 endpoint on loopback ------------

S3_CREDENTIALS = {
    # moto accepts any credentials; real-looking names keep botocore's checks quiet.
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
MOTO_SERVER = str(Path(sys.executable).with_name("moto_server"))


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

    def create_bucket(self, name: str) -> str:
        """Create a bucket (idempotent) and return its name."""
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            region_name=S3_CREDENTIALS["AWS_DEFAULT_REGION"],
        )
        client.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[str]) -> None:
    """SIGTERM the process group, SIGKILL after 10 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3-compatible server for the session; each test uses its own bucket."""
    server = start_s3_server()
    yield server
    server.stop()


def api_customers(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a cleaned frame as API customers (snake_case), with their customer_id."""
    import json

    from churn import contract
    from churn.data import features

    rows: list[dict[str, Any]] = json.loads(features(frame).to_json(orient="records"))
    out = []
    for customer_id, row in zip(frame[contract.ID_COLUMN], rows, strict=True):
        customer = {contract.api_name(k): v for k, v in row.items()}
        customer["tenure"] = int(customer["tenure"])
        out.append({"customer_id": customer_id, **customer})
    return out
