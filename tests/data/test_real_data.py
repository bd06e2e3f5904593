"""The data contract against the real raw data, and the prepare stage on it."""

import math
from pathlib import Path

import pandas as pd
import pytest

from churn.core.data import clean, read_csv
from churn.core.domain import Domain
from churn.core.errors import DataError
from churn.core.params import Params
from churn.pipeline import prepare
from churn.pipeline.validation import validate
from tests.support.paths import RAW_DIR, raw_files


def test_real_data_passes_the_contract(raw_real: pd.DataFrame, domain: Domain) -> None:
    report = validate(clean(raw_real, domain), [str(p) for p in raw_files()], domain.contract)
    assert report.success, report.render()
    assert report.rows == len(raw_real)


def test_real_positive_rate_is_within_the_contracts_range(
    raw_real: pd.DataFrame, domain: Domain
) -> None:
    label = domain.contract.label
    rate = clean(raw_real, domain)[label.name].eq(label.positive).mean()
    low, high = label.positive_rate
    assert low <= rate <= high


def test_the_raw_folder_reads_as_its_files_together(raw_real: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(prepare.read_raw(RAW_DIR), raw_real)
    first = raw_files()[0]
    pd.testing.assert_frame_equal(prepare.read_raw(first), read_csv(first))


def test_raw_files_with_different_headers_are_refused(sample_csv: Path, tmp_path: Path) -> None:
    frame = read_csv(sample_csv)
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.iloc[:, 1:].to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(DataError, match=r"b\.csv: its columns differ"):
        prepare.read_raw(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no CSV file"):
        prepare.read_raw(empty)


def test_several_raw_files_are_read_in_name_order(sample_csv: Path, tmp_path: Path) -> None:
    frame = read_csv(sample_csv)
    half = len(frame) // 2
    frame.iloc[half:].to_csv(tmp_path / "2-later.csv", index=False)
    frame.iloc[:half].to_csv(tmp_path / "1-first.csv", index=False)
    pd.testing.assert_frame_equal(prepare.read_raw(tmp_path), frame)


def test_split_is_stratified_disjoint_and_seeded(
    raw_real: pd.DataFrame, params: Params, domain: Domain
) -> None:
    contract = domain.contract
    train, test = prepare.run(raw_real, params.prepare, domain)
    assert len(train) + len(test) == len(raw_real)
    # train_test_split rounds the test share up to a whole row
    assert len(test) == math.ceil(len(raw_real) * params.prepare.test_size)
    ids = contract.id.name
    assert not set(train[ids]) & set(test[ids])
    label = contract.label
    rates = [part[label.name].eq(label.positive).mean() for part in (train, test)]
    assert abs(rates[0] - rates[1]) <= 1 / len(test)  # as even as whole rows allow
    again, _ = prepare.run(raw_real, params.prepare, domain)
    assert list(again[ids]) == list(train[ids])
    other, _ = prepare.run(
        raw_real, params.prepare.model_copy(update={"seed": params.prepare.seed + 1}), domain
    )
    assert list(other[ids]) != list(train[ids])


def test_prepare_writes_the_two_splits(
    sample_csv: Path, params: Params, domain: Domain, tmp_path: Path
) -> None:
    prepare.main(sample_csv, tmp_path / "prepared", params.prepare, domain)
    train = read_csv(tmp_path / "prepared" / prepare.TRAIN_FILE)
    test = read_csv(tmp_path / "prepared" / prepare.TEST_FILE)
    assert sorted([*train.columns]) == sorted(domain.contract.all_columns)
    assert len(train) + len(test) == len(read_csv(sample_csv))
    report = validate(clean(pd.concat([train, test]), domain), ["splits"], domain.contract)
    assert report.success, report.render()


def test_too_few_rows_to_split_is_a_data_error(
    raw_sample: pd.DataFrame, params: Params, domain: Domain
) -> None:
    with pytest.raises(DataError, match="1 rows: at least 2"):
        prepare.run(raw_sample.head(1), params.prepare, domain)
