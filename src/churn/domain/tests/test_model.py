"""How a churn model trained on the example should behave: the forker's to replace.

Directional: a longer commitment lowers the predicted risk of churn.
Invariance: the customer's gender barely moves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from churn.core.data import clean, features
from churn.pipeline import prepare, train

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from churn.core.domain import Domain
    from churn.core.params import Params

MONTH_TO_MONTH = "Month-to-month"


@dataclass(frozen=True)
class Trained:
    pipeline: Pipeline
    test: pd.DataFrame


@pytest.fixture(scope="module")
def trained(raw_telco: pd.DataFrame, params: Params, domain: Domain) -> Trained:
    train_split, test_split = prepare.run(raw_telco, params.prepare, domain)
    pipeline, _ = train.run(clean(train_split, domain), params.train, domain.contract)
    return Trained(pipeline, clean(test_split, domain))


def _risk(trained: Trained, frame: pd.DataFrame, domain: Domain) -> np.ndarray:
    risk: np.ndarray = trained.pipeline.predict_proba(features(frame, domain.contract))[:, 1]
    return risk


def test_month_to_month_customers_churn_more(raw_telco: pd.DataFrame) -> None:
    churned = raw_telco["Churn"].eq("Yes")
    monthly = raw_telco["Contract"].eq(MONTH_TO_MONTH)
    assert churned[monthly].mean() > 3 * churned[~monthly].mean()


def test_a_two_year_contract_lowers_the_risk(trained: Trained, domain: Domain) -> None:
    monthly = trained.test[trained.test["Contract"].eq(MONTH_TO_MONTH)]
    assert len(monthly) > 500
    before = _risk(trained, monthly, domain)
    after = _risk(trained, monthly.assign(Contract="Two year"), domain)
    assert (after < before).mean() >= 0.95
    assert np.median(before - after) > 0.1


def test_gender_barely_moves_the_risk(trained: Trained, domain: Domain) -> None:
    flipped = trained.test.assign(
        gender=trained.test["gender"].map({"Female": "Male", "Male": "Female"})
    )
    change = np.abs(_risk(trained, flipped, domain) - _risk(trained, trained.test, domain))
    assert change.max() < 0.03
