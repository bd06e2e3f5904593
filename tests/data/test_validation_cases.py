"""The validate stage catches each kind of bad data, and lets valid variations pass.

Each case edits real records in the raw (text) format, as a broken export
would, then runs the same clean + validate path as the pipeline.
"""

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from churn.data import clean
from churn.validation import ValidationReport, validate

Edit = Callable[[pd.DataFrame], pd.DataFrame]


@pytest.fixture(scope="module")
def sample(raw_real: pd.DataFrame) -> pd.DataFrame:
    """1,500 real customers: enough for the class-balance check, quick to validate."""
    return raw_real.sample(1500, random_state=0).reset_index(drop=True)


def _set(column: str, value: str | None, row: int = 0) -> Edit:
    """Write one raw field; None is an empty field (read as missing)."""

    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = frame[column].mask(frame.index == row, value)
        return frame

    return edit


def _first(frame: pd.DataFrame, column: str, value: str) -> int:
    return int(np.flatnonzero(frame[column].eq(value).to_numpy())[0])


def _duplicate_id(frame: pd.DataFrame) -> pd.DataFrame:
    return _set("customerID", str(frame["customerID"].iloc[0]), row=1)(frame)


def _one_class(frame: pd.DataFrame) -> pd.DataFrame:
    frame["Churn"] = "No"
    return frame


def _phone_rule(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[_first(frame, "PhoneService", "No"), "MultipleLines"] = "No"
    return frame


def _internet_rule(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[_first(frame, "InternetService", "No"), "TechSupport"] = "Yes"
    return frame


def _blank_total_for_existing_customer(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[_first(frame, "tenure", "5"), "TotalCharges"] = " "
    return frame


def _row(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.iloc[:0]


def _failed(report: ValidationReport) -> set[tuple[str, str]]:
    return {(c.column, c.expectation) for c in report.failures}


COLUMNS = "expect_table_columns_to_match_set"
ROWS = "expect_table_row_count_to_be_between"
TYPE = "expect_column_values_to_be_in_type_list"
RANGE = "expect_column_values_to_be_between"
LEVELS = "expect_column_values_to_be_in_set"
NOT_NULL = "expect_column_values_to_not_be_null"
UNIQUE = "expect_column_values_to_be_unique"
PATTERN = "expect_column_values_to_match_regex"

# case: (edit, column, failing expectation, an offending value the report shows)
BAD_CASES: dict[str, tuple[Edit, str, str, object]] = {
    "missing column": (lambda f: f.drop(columns=["Contract"]), "(table)", COLUMNS, None),
    "extra column": (lambda f: f.assign(Region="CA"), "(table)", COLUMNS, None),
    "header only": (_row, "(table)", ROWS, None),
    "wrong type": (_set("tenure", "twelve"), "tenure", TYPE, "twelve"),
    "not an integer": (_set("tenure", "1.5"), "tenure", TYPE, 1.5),
    "out of range": (_set("MonthlyCharges", "999"), "MonthlyCharges", RANGE, 999.0),
    "negative": (_set("tenure", "-3"), "tenure", RANGE, -3),
    "unknown level": (_set("Contract", "Weekly"), "Contract", LEVELS, "Weekly"),
    "null": (_set("gender", None), "gender", NOT_NULL, None),
    "blank total, tenure > 0": (_blank_total_for_existing_customer, "TotalCharges", NOT_NULL, None),
    "duplicate id": (_duplicate_id, "customerID", UNIQUE, None),
    "malformed id": (_set("customerID", "12345-abc"), "customerID", PATTERN, "12345-abc"),
    "bad label": (_set("Churn", "Maybe"), "Churn", LEVELS, "Maybe"),
    "single-class label": (_one_class, "Churn", LEVELS, None),
    "phone cross-field rule": (_phone_rule, "MultipleLines", LEVELS, "No"),
    "internet cross-field rule": (_internet_rule, "TechSupport", LEVELS, "Yes"),
}


@pytest.mark.parametrize("case", list(BAD_CASES))
def test_bad_data_is_caught_and_named(sample: pd.DataFrame, case: str) -> None:
    edit, column, expectation, example = BAD_CASES[case]
    report = validate(clean(edit(sample.copy())), [case])
    assert not report.success
    assert (column, expectation) in _failed(report), report.render()
    text = report.render()
    assert text.startswith("FAILED")
    assert f"- {column}:" in text
    if example is not None:
        failure = next(c for c in report.failures if c.column == column)
        assert example in failure.examples
        assert repr(example) in text


def test_single_class_fails_only_the_balance_check(sample: pd.DataFrame) -> None:
    report = validate(clean(_one_class(sample.copy())), ["one class"])
    assert [c.rule for c in report.failures] == ["class balance: at least 5% of labels are 'Yes'"]


def test_missing_column_does_not_flood_the_report(sample: pd.DataFrame) -> None:
    report = validate(clean(sample.drop(columns=["Contract"])), ["missing"])
    text = report.render()
    assert "missing: ['Contract']" in text
    assert "could not run on the columns above" in text
    assert text.count("- Contract:") == 0


@pytest.mark.parametrize(
    "variation",
    [
        pytest.param(lambda f: f[list(reversed(f.columns))], id="reordered columns"),
        pytest.param(lambda f: f.sample(frac=1, random_state=1), id="shuffled rows"),
        pytest.param(lambda f: f.sample(300, random_state=2), id="subsample"),
    ],
)
def test_valid_variations_pass(sample: pd.DataFrame, variation: Edit) -> None:
    report = validate(clean(variation(sample.copy())), ["variation"])
    assert report.success, report.render()


def test_report_as_json(sample: pd.DataFrame) -> None:
    report = validate(clean(_set("Contract", "Weekly")(sample.copy())), ["weekly.csv"])
    data = report.to_dict()
    assert data["success"] is False
    assert data["statistics"]["failed"] == len(data["failures"]) == 1
    assert data["failures"][0]["examples"] == ["Weekly"]
    assert data["statistics"]["evaluated"] == len(data["checks"])
