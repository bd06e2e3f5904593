"""The single-process engine: read a chunk, check it, score it, write it; repeat.

Memory holds one chunk at a time (`churn.scoring.storage`: ``CHUNK_ROWS``
rows of Parquet, ``CSV_BLOCK_BYTES`` of CSV) plus the model and the
summary's counters, so it stays flat whatever the file's size. The three
outputs (scores, rejects, summary) appear under their final names only
when the whole input has been scored; a failure removes what was written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from churn.core.errors import DataError
from churn.scoring import chunk as steps
from churn.scoring.storage import (
    CHUNK_ROWS,
    CSV_BLOCK_BYTES,
    Location,
    ParquetOutput,
    locate,
    open_input,
    remove_if_present,
    write_text,
)
from churn.scoring.summary import Summary

if TYPE_CHECKING:
    from churn.core.contract import Contract
    from churn.core.domain import Domain
    from churn.serving.loader import LoadedModel

REJECTS_SUFFIX = ".rejects.parquet"
SUMMARY_SUFFIX = ".summary.json"


@dataclass(frozen=True)
class Outputs:
    """Where a run writes: the scores, the rejected rows, the summary."""

    scores: Location
    rejects: Location
    summary: Location

    @classmethod
    def beside(cls, output: str) -> Outputs:
        scores = locate(output)
        return cls(scores, scores.sibling(REJECTS_SUFFIX), scores.sibling(SUMMARY_SUFFIX))

    def refuse_existing(self, *, overwrite: bool) -> None:
        """`DataError` naming the first output already there, unless ``overwrite``."""
        if overwrite:
            return
        for location in (self.scores, self.rejects, self.summary):
            if location.exists():
                raise DataError(f"{location.uri}: already exists (--overwrite replaces it)")


def scores_schema(contract: Contract) -> pa.Schema:
    return pa.schema(
        [
            (contract.id.name, pa.string()),
            (steps.PROBABILITY, pa.float64()),
            (steps.DECISION, pa.bool_()),
            (steps.THRESHOLD, pa.float64()),
            (steps.MODEL_VERSION, pa.string()),
            (steps.MODEL_SHA256, pa.string()),
            (steps.SCORED_AT, pa.timestamp("us", tz="UTC")),
        ]
    )


def rejects_schema(contract: Contract, *, row: bool = True) -> pa.Schema:
    """The rejected rows: their position in the input (0-based, data rows), id, reason,
    and the features as read. The Spark job has no row positions (``row=False``)."""
    fields = [(steps.ROW, pa.int64())] if row else []
    fields += [(contract.id.name, pa.string()), (steps.REASON, pa.string())]
    fields += [(name, pa.string()) for name in contract.feature_names]
    return pa.schema(fields)


def stamp_of(model: LoadedModel) -> steps.Stamp:
    return steps.Stamp(
        model_version=model.version,
        model_sha256=model.sha256,
        threshold=model.card.threshold,
        scored_at=datetime.now(UTC),
    )


def new_summary(input_uri: str, outputs: Outputs, model: LoadedModel) -> Summary:
    """The summary of a run that has counted nothing yet (either engine)."""
    return Summary(
        source=input_uri,
        output=outputs.scores.uri,
        rejects=outputs.rejects.uri,
        model={
            "version": model.version,
            "sha256": model.sha256,
            "threshold": model.card.threshold,
            "source": model.source,
            "estimator": model.card.estimator,
        },
        profile=model.drift_profile,
    )


def run(
    input_uri: str,
    outputs: Outputs,
    *,
    domain: Domain,
    model: LoadedModel,
    overwrite: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    csv_block_bytes: int = CSV_BLOCK_BYTES,
) -> Summary:
    """Score ``input_uri`` into ``outputs``; the summary of the run.

    `DataError` (nothing written) for an input that cannot be scored at all:
    missing, unreadable, without the contract's columns, without rows; or
    outputs that exist and ``overwrite`` is off. ``chunk_rows`` (Parquet) and
    ``csv_block_bytes`` (CSV) set the chunk size, hence the memory bound.
    """
    contract = domain.contract
    steps.check_output_names(contract)
    source = open_input(
        input_uri,
        steps.input_columns(contract),
        chunk_rows=chunk_rows,
        csv_block_bytes=csv_block_bytes,
    )
    if source.missing:
        raise DataError(
            f"{input_uri}: missing columns {', '.join(source.missing)} "
            f"(scoring needs {contract.id.name} and every feature)"
        )
    outputs.refuse_existing(overwrite=overwrite)
    stamp = stamp_of(model)
    summary = new_summary(input_uri, outputs, model)
    scores = ParquetOutput(outputs.scores, scores_schema(contract))
    try:
        rejects = ParquetOutput(outputs.rejects, rejects_schema(contract))
    except BaseException:
        scores.abort()
        raise
    committed: list[Location] = []
    try:
        for text in source.chunks():
            result = steps.score_chunk(text, domain, model.model, stamp)
            scores.write(result.scored)
            if len(result.rejected):
                # Positions in the whole input: the rows before this chunk, plus its own.
                positions = summary.read + result.rejected.index.to_numpy(dtype="int64")
                result.rejected.insert(0, steps.ROW, positions)
                rejects.write(result.rejected)
            summary.add(
                result.scored[steps.PROBABILITY].to_numpy(),
                result.scored[steps.DECISION].to_numpy(),
                len(result.rejected),
                result.numbers,
                result.codes,
            )
        if summary.read == 0:
            raise DataError(f"{input_uri}: no rows to score (a header and nothing else)")
        for output in (scores, rejects):
            output.commit()
            committed.append(output.file.location)
        write_text(outputs.summary, summary.to_json())
    except BaseException:
        scores.abort()
        rejects.abort()
        for location in committed:
            remove_if_present(location)
        raise
    return summary
