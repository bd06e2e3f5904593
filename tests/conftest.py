"""Shared paths and fixtures. Fixtures are small and built from committed files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from churn.data import read_csv
from churn.params import Params, load_params

REPO = Path(__file__).resolve().parents[1]
RAW_DATA = REPO / "data" / "raw" / "telco_churn.csv"
FIXTURE = REPO / "tests" / "fixtures" / "customers.csv"


@pytest.fixture(scope="session")
def params() -> Params:
    return load_params(REPO / "params.yaml")


@pytest.fixture(scope="session")
def raw_real() -> pd.DataFrame:
    """The real raw file as text columns (treat as read-only; copy to modify)."""
    return read_csv(RAW_DATA)


@pytest.fixture
def raw_fixture() -> pd.DataFrame:
    """32 real customers in the raw format, incl. two with zero tenure."""
    return read_csv(FIXTURE)


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
def small_model_dir(params: Params, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model directory (skops, ONNX, card, drift profile) trained on the
    32-row fixture, written as `train` writes it: seconds, for unit tests."""
    from churn import train
    from churn.data import clean

    frame = clean(read_csv(FIXTURE))
    train_params = params.train.model_copy(update={"cv_folds": 2})
    pipeline, metrics = train.run(frame, train_params)
    directory = tmp_path_factory.mktemp("small-model")
    train.write_model(
        pipeline,
        frame,
        directory,
        params=train_params,
        drift=params.drift,
        metrics=metrics,
        data={},
    )
    return directory
