from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn import contract
from churn.data import clean, features, label, load, read_csv
from churn.errors import DataError
from tests.conftest import FIXTURE


def test_blank_total_charges_of_new_customers_becomes_zero(raw_fixture: pd.DataFrame) -> None:
    new = raw_fixture["tenure"].eq("0")
    assert raw_fixture.loc[new, "TotalCharges"].str.strip().eq("").all()
    cleaned = clean(raw_fixture)
    assert cleaned.loc[new, "TotalCharges"].eq(0.0).all()
    assert cleaned["TotalCharges"].dtype == "float64"


def test_blank_total_charges_of_an_existing_customer_stays_missing(
    raw_fixture: pd.DataFrame,
) -> None:
    raw_fixture.loc[raw_fixture.index[5], "TotalCharges"] = " "
    assert raw_fixture.loc[raw_fixture.index[5], "tenure"] != "0"
    cleaned = clean(raw_fixture)
    assert pd.isna(cleaned.loc[raw_fixture.index[5], "TotalCharges"])


def test_senior_citizen_becomes_yes_no(raw_fixture: pd.DataFrame) -> None:
    cleaned = clean(raw_fixture)
    assert set(cleaned["SeniorCitizen"]) <= {"Yes", "No"}
    assert (raw_fixture["SeniorCitizen"].eq("1") == cleaned["SeniorCitizen"].eq("Yes")).all()


def test_unparseable_values_are_kept_as_written(raw_fixture: pd.DataFrame) -> None:
    raw_fixture.loc[raw_fixture.index[0], "tenure"] = "twelve"
    raw_fixture.loc[raw_fixture.index[1], "tenure"] = "1.5"
    cleaned = clean(raw_fixture)
    assert cleaned["tenure"].iloc[0] == "twelve"
    assert cleaned["tenure"].iloc[1] == 1.5
    assert isinstance(cleaned["tenure"].iloc[2], int)


def test_clean_is_idempotent(raw_fixture: pd.DataFrame, tmp_path: Path) -> None:
    once = clean(raw_fixture)
    once.to_csv(tmp_path / "once.csv", index=False)
    twice = load([tmp_path / "once.csv"])
    pd.testing.assert_frame_equal(once, twice)


def test_clean_tolerates_missing_columns(raw_fixture: pd.DataFrame) -> None:
    cleaned = clean(raw_fixture.drop(columns=["tenure", "SeniorCitizen"]))
    assert "tenure" not in cleaned
    assert cleaned["TotalCharges"].isna().sum() == 2  # blank, and no tenure to excuse it


def test_features_and_label(raw_fixture: pd.DataFrame) -> None:
    cleaned = clean(raw_fixture)
    x = features(cleaned)
    assert list(x.columns) == contract.feature_names()
    assert all(x[c].dtype == "float64" for c in contract.numeric_names())
    y = label(cleaned)
    assert y.dtype == np.int64
    assert y.sum() == raw_fixture["Churn"].eq("Yes").sum()


def test_load_concatenates_files_in_order() -> None:
    frame = load([FIXTURE, FIXTURE])
    assert len(frame) == 2 * len(read_csv(FIXTURE))


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), ("", "empty"), ("dir", "directory")],
)
def test_unreadable_input_raises_a_readable_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "customers.csv"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_csv(path)


def test_header_only_file_is_a_table_with_no_rows(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text(FIXTURE.read_text().splitlines()[0] + "\n")
    frame = read_csv(path)
    assert len(frame) == 0
    assert list(frame.columns) == FIXTURE.read_text().splitlines()[0].split(",")
