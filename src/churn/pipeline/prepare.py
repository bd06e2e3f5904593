"""Stage `prepare`: repair the raw data and split it for training.

The split is stratified on the label and seeded, so the same raw file and
parameters always give the same two files. Cleaning applies only the
domain's repairs of the raw data's documented quirks (`churn.core.data.clean`);
judging the data is the next stage's job, so a malformed file still comes out the other side, to be
reported in full by `validate`, rather than half-reported here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from churn.core.contract import Contract
from churn.core.data import clean, read_csv
from churn.core.domain import Domain
from churn.core.errors import DataError
from churn.core.params import PrepareParams

log = logging.getLogger(__name__)
TRAIN_FILE = "train.csv"
TEST_FILE = "test.csv"


def split(
    frame: pd.DataFrame, params: PrepareParams, contract: Contract
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded train/test split, stratified on the label where the label allows it."""
    from sklearn.model_selection import train_test_split

    if len(frame) < 2:
        raise DataError(f"{len(frame)} rows: at least 2 are needed for a train/test split")
    strata = None
    if contract.label.name in frame:
        label = frame[contract.label.name].astype(str)
        if label.value_counts().min() >= 2:
            strata = label
    if strata is None:
        log.warning("label missing or a class has < 2 rows: splitting without stratification")
    try:
        train, test = train_test_split(
            frame, test_size=params.test_size, random_state=params.seed, stratify=strata
        )
    except ValueError as exc:  # e.g. fewer test rows than classes
        raise DataError(f"{len(frame)} rows cannot be split: {exc}") from None
    return train, test


def run(
    raw: pd.DataFrame, params: PrepareParams, domain: Domain
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Repair ``raw`` and split it into (train, test)."""
    return split(clean(raw, domain), params, domain.contract)


def raw_files(raw: Path) -> list[Path]:
    """The raw data: ``raw`` itself, or every ``*.csv`` in the folder ``raw``, by name."""
    if not raw.is_dir():
        return [raw]
    files = sorted(raw.glob("*.csv"))
    if not files:
        raise DataError(f"{raw}: no CSV file in the raw data folder")
    return files


def read_raw(raw: Path) -> pd.DataFrame:
    """The raw data as text columns; several files must share their header."""
    paths = raw_files(raw)
    frames = [read_csv(path) for path in paths]
    header = list(frames[0].columns)
    for path, frame in zip(paths[1:], frames[1:], strict=True):
        if list(frame.columns) != header:
            raise DataError(f"{path}: its columns differ from the first raw file's")
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def main(raw_path: Path, out_dir: Path, params: PrepareParams, domain: Domain) -> None:
    train, test = run(read_raw(raw_path), params, domain)
    out_dir.mkdir(parents=True, exist_ok=True)
    train.to_csv(out_dir / TRAIN_FILE, index=False)
    test.to_csv(out_dir / TEST_FILE, index=False)
    log.info("wrote %d train and %d test rows to %s", len(train), len(test), out_dir)
