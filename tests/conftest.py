"""Shared paths and fixtures. Fixtures are small and built from committed files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from churn.core.contract import Contract
from churn.core.data import read_csv
from churn.core.domain import Domain, load_domain
from churn.core.params import MetricGate, Params, load_params
from churn.serving import schemas
from churn.serving.schemas import Schemas
from tests.support.data import sample_frame
from tests.support.models import fit_and_write
from tests.support.paths import PARAMS, raw_files

SAMPLE_ROWS = 40


@pytest.fixture(scope="session")
def domain() -> Domain:
    """The domain the suite runs on: the package's own room, or ``$CHURN_DOMAIN``."""
    return load_domain()


@pytest.fixture(scope="session")
def contract(domain: Domain) -> Contract:
    return domain.contract


@pytest.fixture
def gates(params: Params) -> dict[str, MetricGate]:
    """params.yaml's gate: metric → rule (a fresh dict per test)."""
    return dict(params.gate)


@pytest.fixture(scope="session")
def api(contract: Contract) -> Schemas:
    """The service's request and response models for the domain's contract."""
    return schemas.build(contract)


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(PARAMS)


@pytest.fixture(scope="session")
def raw_real() -> pd.DataFrame:
    """The real raw data as text columns (treat as read-only; copy to modify)."""
    frames = [read_csv(path) for path in raw_files()]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="session")
def sample_csv(
    raw_real: pd.DataFrame, contract: Contract, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A small real sample in the raw format: SAMPLE_ROWS rows, both classes in
    proportion (seeded), every categorical level present where the data has it
    in few rows. Seconds to train on, for unit tests."""
    path = tmp_path_factory.mktemp("sample") / "sample.csv"
    sample_frame(raw_real, contract, SAMPLE_ROWS).to_csv(path, index=False)
    return path


@pytest.fixture
def raw_sample(sample_csv: Path) -> pd.DataFrame:
    """`sample_csv` as text columns (a fresh copy per test)."""
    return read_csv(sample_csv)


@pytest.fixture(autouse=True)
def _restore_mlflow_tracking_uri() -> Iterator[None]:
    """`mlflow.set_tracking_uri` also sets MLFLOW_TRACKING_URI in os.environ;
    restore it after each test so later subprocesses do not inherit a test's store."""
    import os

    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture(scope="session")
def small_model_dir(
    params: Params, domain: Domain, sample_csv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A real model directory (skops, ONNX, card, drift profile) trained on the
    sample, written as `train` writes it: seconds, for unit tests."""
    from churn.core.data import clean

    directory = tmp_path_factory.mktemp("small-model")
    train_params = params.train.model_copy(update={"cv_folds": 2})
    fit_and_write(clean(read_csv(sample_csv), domain), params, domain, directory, train_params)
    return directory
