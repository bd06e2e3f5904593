"""The data contract against the real IBM Telco file, and the prepare stage on it."""

import pandas as pd

from churn import contract
from churn.artifacts import file_sha256
from churn.data import clean
from churn.params import Params
from churn.prepare import run as prepare
from churn.validation import validate
from tests.conftest import RAW_DATA

RAW_SHA256 = "16320c9c1ec72448db59aa0a26a0b95401046bef5d02fd3aeb906448e3055e91"


def test_raw_file_is_the_documented_one() -> None:
    assert file_sha256(RAW_DATA) == RAW_SHA256


def test_real_data_passes_the_contract(raw_real: pd.DataFrame) -> None:
    report = validate(clean(raw_real), [str(RAW_DATA)])
    assert report.success, report.render()
    assert report.rows == 7043


def test_blank_total_charges_are_exactly_the_new_customers(raw_real: pd.DataFrame) -> None:
    blank = raw_real["TotalCharges"].str.strip().eq("")
    assert blank.sum() == 11
    assert (blank == raw_real["tenure"].eq("0")).all()


def test_real_churn_rate(raw_real: pd.DataFrame) -> None:
    rate = raw_real[contract.LABEL.name].eq(contract.POSITIVE_LABEL).mean()
    assert round(rate, 4) == 0.2654


def test_split_is_stratified_disjoint_and_seeded(raw_real: pd.DataFrame, params: Params) -> None:
    train, test = prepare(raw_real, params.prepare)
    assert len(train) + len(test) == len(raw_real)
    assert abs(len(test) / len(raw_real) - params.prepare.test_size) < 0.001
    ids = contract.ID_COLUMN
    assert not set(train[ids]) & set(test[ids])
    rate = {name: part["Churn"].eq("Yes").mean() for name, part in (("tr", train), ("te", test))}
    assert abs(rate["tr"] - rate["te"]) < 0.005
    again, _ = prepare(raw_real, params.prepare)
    assert list(again[ids]) == list(train[ids])
