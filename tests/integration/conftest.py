"""Fixtures for the integration tests: a real model, `churn serve` and an S3-compatible store.

The helpers behind them are in ``tests/support`` (`servers`, `models`,
`project`); test modules import those, never this file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest

from churn.core.contract import Contract
from churn.core.domain import Domain
from churn.core.params import Params
from churn.serving import loader
from churn.serving.loader import LoadedModel
from churn.serving.settings import ServingSettings
from tests.support.models import TrainedModel, train_model
from tests.support.servers import (
    S3Server,
    Server,
    start_s3_server,
    start_server,
    stop_server,
)


# Until every module imports these from tests.support (test modules must not
# import this file), the helpers that used to live here stay importable from it.
@pytest.fixture(scope="session")
def trained_model(
    raw_real: pd.DataFrame,
    params: Params,
    domain: Domain,
    tmp_path_factory: pytest.TempPathFactory,
) -> TrainedModel:
    """The default model trained on the real split, written as `train` writes it (no MLflow)."""
    return train_model(raw_real, params, domain, tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def model(trained_model: TrainedModel, contract: Contract) -> LoadedModel:
    """The trained model, loaded (hash and self-check) once for the session's apps."""
    return loader.load(ServingSettings(model_dir=trained_model.directory), contract)


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


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3-compatible server for the session; each test uses its own bucket."""
    server = start_s3_server()
    yield server
    server.stop()
