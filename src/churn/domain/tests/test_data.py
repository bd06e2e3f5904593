"""The example's raw file and its repairs (IBM Telco churn): the forker's to replace.

data/raw/README.md documents the file and its two quirks: ``SeniorCitizen``
is stored as 0/1 while every other flag is No/Yes, and ``TotalCharges`` is
blank for the eleven customers not yet billed (tenure 0).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churn.core.artifacts import file_sha256
from churn.core.data import clean, load
from churn.core.domain import Domain
from churn.domain.repairs import repair
from churn.pipeline.validation import validate

RAW_SHA256 = "16320c9c1ec72448db59aa0a26a0b95401046bef5d02fd3aeb906448e3055e91"
CUSTOMERS = 7043
NOT_YET_BILLED = 11
CHURN_RATE = 0.2654


def test_raw_file_is_the_documented_one(raw_file: Path, raw_telco: pd.DataFrame) -> None:
    assert file_sha256(raw_file) == RAW_SHA256
    assert len(raw_telco) == CUSTOMERS


def test_real_churn_rate(raw_telco: pd.DataFrame) -> None:
    assert round(raw_telco["Churn"].eq("Yes").mean(), 4) == CHURN_RATE


def test_the_real_data_passes_the_contract(raw_telco: pd.DataFrame, domain: Domain) -> None:
    report = validate(clean(raw_telco, domain), ["telco"], domain.contract)
    assert report.success, report.render()
    assert report.rows == CUSTOMERS


def test_every_level_of_the_contract_occurs_in_the_data(
    raw_telco: pd.DataFrame, domain: Domain
) -> None:
    cleaned = clean(raw_telco, domain)
    for column, levels in domain.contract.levels_by_column.items():
        assert set(cleaned[column]) == set(levels), column


def test_blank_total_charges_are_exactly_the_new_customers(raw_telco: pd.DataFrame) -> None:
    blank = raw_telco["TotalCharges"].str.strip().eq("")
    assert blank.sum() == NOT_YET_BILLED
    assert (blank == raw_telco["tenure"].eq("0")).all()


def test_blank_total_charges_of_new_customers_becomes_zero(
    raw: pd.DataFrame, domain: Domain
) -> None:
    new = raw["tenure"].eq("0")
    cleaned = clean(raw, domain)
    assert cleaned.loc[new, "TotalCharges"].eq(0.0).all()
    assert cleaned["TotalCharges"].dtype == "float64"
    assert cleaned["TotalCharges"].notna().all()


def test_blank_total_charges_of_an_existing_customer_stays_missing_and_fails(
    raw: pd.DataFrame, domain: Domain
) -> None:
    existing = raw.index[raw["tenure"].ne("0")][0]
    raw.loc[existing, "TotalCharges"] = " "
    cleaned = clean(raw, domain)
    assert pd.isna(cleaned.loc[existing, "TotalCharges"])
    report = validate(cleaned, ["blank total"], domain.contract)
    assert [(c.column, c.rule) for c in report.failures] == [("TotalCharges", "no missing values")]


def test_senior_citizen_becomes_yes_no(raw: pd.DataFrame, domain: Domain) -> None:
    assert set(raw["SeniorCitizen"]) == {"0", "1"}
    cleaned = clean(raw, domain)
    assert set(cleaned["SeniorCitizen"]) == {"Yes", "No"}
    assert (raw["SeniorCitizen"].eq("1") == cleaned["SeniorCitizen"].eq("Yes")).all()


def test_repairs_are_idempotent_and_leave_their_input_alone(raw: pd.DataFrame) -> None:
    before = raw.copy()
    once = repair(raw)
    pd.testing.assert_frame_equal(raw, before)
    pd.testing.assert_frame_equal(repair(once), once)


def test_prepared_splits_read_back_the_same(
    raw: pd.DataFrame, domain: Domain, tmp_path: Path
) -> None:
    once = clean(raw, domain)
    once.to_csv(tmp_path / "prepared.csv", index=False)
    pd.testing.assert_frame_equal(load([tmp_path / "prepared.csv"], domain), once)


def test_without_tenure_a_blank_total_cannot_be_excused(raw: pd.DataFrame, domain: Domain) -> None:
    cleaned = clean(raw.drop(columns=["tenure", "SeniorCitizen"]), domain)
    assert "tenure" not in cleaned
    assert cleaned["TotalCharges"].isna().sum() == NOT_YET_BILLED


def test_the_example_record_is_the_first_customer_repaired(
    raw: pd.DataFrame, domain: Domain
) -> None:
    first = clean(raw.head(1), domain).iloc[0]
    for column, value in domain.contract.example.items():
        assert first[column] == value, column
