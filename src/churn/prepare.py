"""Stage `prepare`: clean the raw customer file and split it for training.

The split is stratified on the label and seeded, so the same raw file and
parameters always give the same two files. Cleaning repairs only the raw
file's documented quirks (see `churn.data.clean`); judging the data is the
next stage's job, so a malformed file still comes out the other side, to be
reported in full by `validate`, rather than half-reported here.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from churn import contract
from churn.data import clean, read_csv
from churn.errors import DataError
from churn.params import PrepareParams

log = logging.getLogger(__name__)
TRAIN_FILE = "train.csv"
TEST_FILE = "test.csv"


def split(frame: pd.DataFrame, params: PrepareParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A seeded train/test split, stratified on the label where the label allows it."""
    from sklearn.model_selection import train_test_split

    if len(frame) < 2:
        raise DataError(f"{len(frame)} rows: at least 2 are needed for a train/test split")
    strata = None
    if contract.LABEL.name in frame:
        label = frame[contract.LABEL.name].astype(str)
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


def run(raw: pd.DataFrame, params: PrepareParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean ``raw`` and split it into (train, test)."""
    return split(clean(raw), params)


def main(raw_path: Path, out_dir: Path, params: PrepareParams) -> None:
    train, test = run(read_csv(raw_path), params)
    out_dir.mkdir(parents=True, exist_ok=True)
    train.to_csv(out_dir / TRAIN_FILE, index=False)
    test.to_csv(out_dir / TEST_FILE, index=False)
    log.info("wrote %d train and %d test rows to %s", len(train), len(test), out_dir)
