"""Shared paths and fixtures. Fixtures are small and built from committed files."""

from __future__ import annotations

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
