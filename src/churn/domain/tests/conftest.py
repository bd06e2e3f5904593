"""Fixtures for the example's own tests: this room's domain, its raw data, the parameters.

When the suite runs on another domain (``CHURN_DOMAIN``), these tests skip:
they describe the Telco data, not the machinery.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churn.core.data import read_csv
from churn.core.domain import Domain, load_domain
from churn.core.params import Params, load_params
from churn.domain import DOMAIN

RAW_FILE = Path("data") / "raw" / "telco_churn.csv"


@pytest.fixture(scope="session", autouse=True)
def _only_on_this_domain() -> None:
    if load_domain().contract != DOMAIN.contract:
        pytest.skip("the suite runs on another domain: the Telco example's tests do not apply")


@pytest.fixture(scope="session")
def domain() -> Domain:
    return DOMAIN


@pytest.fixture(scope="session")
def raw_file(pytestconfig: pytest.Config) -> Path:
    return pytestconfig.rootpath / RAW_FILE


@pytest.fixture(scope="session")
def raw_telco(raw_file: Path) -> pd.DataFrame:
    """The raw file as text columns (treat as read-only; copy to modify)."""
    return read_csv(raw_file)


@pytest.fixture
def raw(raw_telco: pd.DataFrame) -> pd.DataFrame:
    """The raw file as text columns, a fresh copy per test."""
    return raw_telco.copy()


@pytest.fixture(scope="session")
def params(pytestconfig: pytest.Config) -> Params:
    return load_params(pytestconfig.rootpath / "params.yaml")
