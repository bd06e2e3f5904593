"""One chunk of records in, scored rows and rejected rows out: the engines' shared step.

The single process (`churn.scoring.local`) and the Spark job
(`churn.scoring.spark`) both call `score_chunk` on pandas frames of text,
so the two cannot disagree: the same repairs and typing as the pipeline
(`churn.core.data.clean`), the same row checks (`churn.scoring.rows`), the
same ONNX model as the service (`churn.serving.onnx_model.OnnxModel`, fed
float32 numbers and string levels as ``/predict`` feeds it) and the same
decision rule (``probability >= threshold``, the model card's threshold).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from churn.core.contract import MISSING_LEVEL
from churn.core.data import clean
from churn.core.errors import ContractError
from churn.scoring.rows import check

if TYPE_CHECKING:
    from churn.core.contract import Contract
    from churn.core.domain import Domain
    from churn.serving.onnx_model import OnnxModel

PROBABILITY = "probability"
DECISION = "decision"
THRESHOLD = "threshold"
MODEL_VERSION = "model_version"
MODEL_SHA256 = "model_sha256"
SCORED_AT = "scored_at"
SCORE_COLUMNS = (PROBABILITY, DECISION, THRESHOLD, MODEL_VERSION, MODEL_SHA256, SCORED_AT)
"""What the output has besides the contract's id column, in this order."""
REASON = "reason"
ROW = "row"


@dataclass(frozen=True)
class Stamp:
    """What every scored row carries besides its id and score: the model, and when."""

    model_version: str
    model_sha256: str
    threshold: float
    scored_at: datetime  # one instant per run (UTC), so a run's rows are found together


@dataclass(frozen=True)
class ChunkResult:
    scored: pd.DataFrame  # the id, then SCORE_COLUMNS
    rejected: pd.DataFrame  # the id, REASON, then the other input columns as read (text)
    # The scored rows' features (for the summary's bin counts): numbers, and level codes.
    numbers: dict[str, np.ndarray]
    codes: dict[str, np.ndarray]


def input_columns(contract: Contract) -> tuple[str, ...]:
    """The columns scoring reads: the id, then the features (the label is not needed)."""
    return (contract.id.name, *contract.feature_names)


def check_output_names(contract: Contract) -> None:
    """`ContractError` if the id column would collide with an output column."""
    if contract.id.name in (*SCORE_COLUMNS, REASON, ROW):
        raise ContractError(
            f"id column {contract.id.name!r}: batch scoring writes a column of that name"
        )


def score_chunk(text: pd.DataFrame, domain: Domain, model: OnnxModel, stamp: Stamp) -> ChunkResult:
    """Check and score one chunk of records (every input column as text, as read)."""
    contract = domain.contract
    frame = clean(text, domain)
    checked = check(frame, contract)
    ok = checked.valid
    rows = int(np.count_nonzero(ok))
    numbers = {name: values[ok] for name, values in checked.numbers.items()}
    codes = {name: values[ok] for name, values in checked.codes.items()}
    if rows:
        # What /predict feeds the session: float32 numbers, the levels' own strings.
        # A missing level (code len(levels), nullable columns only) is MISSING_LEVEL.
        levels = {name: (*lv, MISSING_LEVEL) for name, lv in contract.levels_by_column.items()}
        numeric = np.column_stack([numbers[name] for name in model.numeric]).astype(np.float32)
        categorical = np.column_stack(
            [np.asarray(levels[name], dtype=object)[codes[name]] for name in model.categorical]
        )
        probabilities = model.predict(numeric, categorical)
    else:
        probabilities = np.empty(0, dtype=np.float64)
    scored = pd.DataFrame(
        {
            contract.id.name: frame[contract.id.name].to_numpy(dtype=object)[ok],
            PROBABILITY: probabilities,
            DECISION: probabilities >= stamp.threshold,
            THRESHOLD: np.full(rows, stamp.threshold, dtype=np.float64),
            MODEL_VERSION: np.full(rows, stamp.model_version, dtype=object),
            MODEL_SHA256: np.full(rows, stamp.model_sha256, dtype=object),
            SCORED_AT: pd.Series([stamp.scored_at] * rows, dtype="datetime64[us, UTC]"),
        }
    )
    rejected_text = text.loc[~ok]
    rejected = pd.DataFrame(
        {
            contract.id.name: rejected_text[contract.id.name].to_numpy(dtype=object),
            REASON: checked.reasons[~ok],
        },
        index=rejected_text.index,  # positions in the chunk
    )
    for name in contract.feature_names:
        rejected[name] = rejected_text[name].to_numpy(dtype=object)
    return ChunkResult(scored, rejected, numbers, codes)
