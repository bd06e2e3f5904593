"""Reading records: the domain's repairs first, then a type for each contract column."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.core.contract import Contract
from churn.core.data import clean, features, label, load, read_csv
from churn.core.domain import Domain
from churn.core.errors import DataError


def _int_column(contract: Contract) -> str:
    ints = [c.name for c in contract.numeric if c.kind == "int"]
    if not ints:
        pytest.skip("the contract has no integer column")
    return ints[0]


def test_clean_applies_the_domains_repair_without_touching_its_input(
    raw_sample: pd.DataFrame, contract: Contract
) -> None:
    column = contract.categorical_names[0]
    seen: list[int] = []

    def repair(frame: pd.DataFrame) -> pd.DataFrame:
        seen.append(len(frame))
        return frame.assign(**{column: "repaired"})

    before = raw_sample.copy()
    cleaned = clean(raw_sample, Domain(contract, repair))
    assert seen == [len(raw_sample)]
    assert cleaned[column].eq("repaired").all()
    pd.testing.assert_frame_equal(raw_sample, before)


def test_numeric_columns_get_their_contract_type(
    raw_sample: pd.DataFrame, contract: Contract, domain: Domain
) -> None:
    cleaned = clean(raw_sample, domain)
    for column in contract.numeric:
        expected = "Int64" if column.kind == "int" else "float64"
        assert str(cleaned[column.name].dtype) == expected, column.name
    for name in (contract.id.name, *contract.categorical_names):
        assert not pd.api.types.is_numeric_dtype(cleaned[name]), name


def test_a_blank_numeric_cell_is_missing(raw_sample: pd.DataFrame, contract: Contract) -> None:
    column = contract.numeric_names[0]
    unrepaired = Domain(contract)  # no repairs: a blank stays blank
    before = clean(raw_sample, unrepaired)[column].isna()
    raw_sample.loc[raw_sample.index[0], column] = "  "
    after = clean(raw_sample, unrepaired)[column].isna()
    assert after.iloc[0]
    assert after.iloc[1:].equals(before.iloc[1:])


def test_unparseable_values_are_kept_as_written(
    raw_sample: pd.DataFrame, contract: Contract, domain: Domain
) -> None:
    column = _int_column(contract)
    raw_sample.loc[raw_sample.index[0], column] = "twelve"
    raw_sample.loc[raw_sample.index[1], column] = "1.5"
    cleaned = clean(raw_sample, domain)
    assert cleaned[column].iloc[0] == "twelve"
    assert cleaned[column].iloc[1] == 1.5
    assert isinstance(cleaned[column].iloc[2], int)


def test_clean_is_idempotent(raw_sample: pd.DataFrame, domain: Domain, tmp_path: Path) -> None:
    once = clean(raw_sample, domain)
    once.to_csv(tmp_path / "once.csv", index=False)
    twice = load([tmp_path / "once.csv"], domain)
    pd.testing.assert_frame_equal(once, twice)


def test_clean_tolerates_missing_columns(
    raw_sample: pd.DataFrame, contract: Contract, domain: Domain
) -> None:
    dropped = [contract.numeric_names[0], contract.categorical_names[0]]
    cleaned = clean(raw_sample.drop(columns=dropped), domain)
    assert not set(dropped) & set(cleaned.columns)
    assert len(cleaned) == len(raw_sample)


def test_features_and_label(raw_sample: pd.DataFrame, contract: Contract, domain: Domain) -> None:
    cleaned = clean(raw_sample, domain)
    x = features(cleaned, contract)
    assert list(x.columns) == list(contract.feature_names)
    assert all(x[c].dtype == "float64" for c in contract.numeric_names)
    y = label(cleaned, contract)
    assert y.dtype == np.int64
    assert set(y) == {0, 1}
    assert y.sum() == raw_sample[contract.label.name].eq(contract.label.positive).sum()


def test_load_concatenates_files_in_order(sample_csv: Path, domain: Domain) -> None:
    one = read_csv(sample_csv)
    frame = load([sample_csv, sample_csv], domain)
    assert len(frame) == 2 * len(one)
    ids = list(one[domain.contract.id.name])
    assert list(frame[domain.contract.id.name]) == ids + ids


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "no such file"), ("", "empty"), ("dir", "directory")],
)
def test_unreadable_input_raises_a_readable_error(
    tmp_path: Path, content: str | None, message: str
) -> None:
    path = tmp_path / "records.csv"
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message):
        read_csv(path)


def test_header_only_file_is_a_table_with_no_rows(sample_csv: Path, tmp_path: Path) -> None:
    header = sample_csv.read_text().splitlines()[0]
    path = tmp_path / "header.csv"
    path.write_text(header + "\n")
    frame = read_csv(path)
    assert len(frame) == 0
    assert list(frame.columns) == list(read_csv(sample_csv).columns)
