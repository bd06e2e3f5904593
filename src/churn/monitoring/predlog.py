"""The prediction log: what the service records, how its files are named, how to read them.

The service (`churn.serving.prediction_log`) writes two streams of JSON lines
into one directory: ``predictions`` (one line per scored record) and
``feedback`` (outcomes reported later on ``POST /feedback``). `join` pairs
them for `churn.monitoring.performance`. Standard library and pydantic only: the
service imports this module, and so can a monitoring job without pandas.

File names sort by the time the file was started::

    predictions-20261127T101500.123456Z-<host>-<pid>-0001.jsonl[.gz]

A file being written carries the extra suffix ``.open``; it loses it when
it is rotated (closed and complete). Each batch is appended as complete
lines (``.gz``: one gzip member per batch) and fsync'd before the next, so
a crash can leave at most a cut-off last line, which the reader skips.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from churn.core.errors import PredictionLogError

PREDICTIONS = "predictions"
FEEDBACK = "feedback"
STREAMS = (PREDICTIONS, FEEDBACK)
JSONL = ".jsonl"
GZIP = ".gz"
OPEN = ".open"
_READ_CHUNK = 1 << 20
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9.-]+")


class ShadowScore(BaseModel):
    """The challenger's score for the same record in shadow mode (not returned)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_version: str
    model_sha256: str
    probability: float
    decision: bool


class PredictionRecord(BaseModel):
    """One scored record: a line of the ``predictions`` stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time: AwareDatetime  # when the service scored the request (UTC)
    request_id: str  # the response's request_id (shared by a batch's records)
    id: str | None  # the record's id (the contract's id column), if the request gave one
    model_version: str
    model_sha256: str  # of the ONNX file served
    threshold: float
    probability: float  # of the positive class
    decision: bool  # the decision returned: probability >= threshold
    # As validated, in the API's snake_case names (None: blank, in a nullable column).
    features: dict[str, str | int | float | None]
    # Which model answered: "champion", or "challenger" for the records an
    # A/B test sends to it (churn.monitoring.abtest). Older records have no field.
    variant: str = "champion"
    shadow: ShadowScore | None = None  # the challenger's score, in shadow mode


class FeedbackRecord(BaseModel):
    """One outcome reported on ``POST /feedback``: a line of the ``feedback`` stream."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    received_at: AwareDatetime
    request_id: str | None
    id: str | None  # the record's id, as sent in the API's id field
    outcome: bool  # the positive class was observed
    observed_at: AwareDatetime  # when the outcome was observed (default: received_at)


RecordT = TypeVar("RecordT", PredictionRecord, FeedbackRecord)


# -- file names ----------------------------------------------------------------------


def file_name(
    stream: str, started: datetime, host: str, pid: int, sequence: int, *, compress: bool
) -> str:
    """The final name of a log file (without ``.open``); sorts by start time."""
    stamp = started.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    host = _UNSAFE_NAME.sub("-", host).strip("-") or "host"
    return f"{stream}-{stamp}-{host}-{pid}-{sequence:04d}{JSONL}{GZIP if compress else ''}"


def log_files(directory: Path, stream: str, *, include_open: bool = True) -> list[Path]:
    """The stream's files in ``directory``, oldest first; complete ones only if asked."""
    files = [
        path
        for path in directory.glob(f"{stream}-*")
        if path.name.endswith((JSONL, JSONL + GZIP)) or (include_open and path.name.endswith(OPEN))
    ]
    return sorted(files, key=lambda path: path.name)


# -- reading -------------------------------------------------------------------------


@dataclass(frozen=True)
class FileContent:
    """The complete lines of a log file and what was cut off after them."""

    lines: list[bytes]
    cut_off: bytes  # an unterminated last line, or an unreadable gzip tail; b"" when clean
    clean: bool


def read_lines(path: Path) -> FileContent:
    """The newline-terminated lines of a log file, tolerating a cut-off end.

    Anything after the last newline (a line cut by a crash), or a gzip member
    cut short, is returned separately instead of raising.
    """
    complete = True
    try:
        if path.name.removesuffix(OPEN).endswith(GZIP):
            data, complete = _gunzip(path)
        else:
            data = path.read_bytes()
    except OSError as exc:
        raise PredictionLogError(f"{path}: {exc.strerror}") from None
    end = data.rfind(b"\n") + 1
    lines = data[:end].splitlines()
    return FileContent(lines, data[end:], clean=complete and end == len(data))


def _gunzip(path: Path) -> tuple[bytes, bool]:
    """Concatenated gzip members, decompressed as far as they go; True if all complete."""
    out: list[bytes] = []
    decompressor = zlib.decompressobj(wbits=31)
    begun = False  # a member has started and not yet ended
    with path.open("rb") as handle:
        while chunk := handle.read(_READ_CHUNK):
            while chunk:
                begun = True
                try:
                    out.append(decompressor.decompress(chunk))
                except zlib.error:  # not gzip (any more): keep what came before
                    return b"".join(out), False
                if not decompressor.eof:
                    break
                begun = False
                chunk = decompressor.unused_data  # the next member starts here
                decompressor = zlib.decompressobj(wbits=31)
    return b"".join(out), not begun


@dataclass
class ReadStats:
    """What reading a stream found: files, records, and files with a cut-off end."""

    files: int = 0
    records: int = 0
    cut_off: list[str] = field(default_factory=list)


def iter_records(
    directory: Path, stream: str, record_type: type[RecordT], stats: ReadStats | None = None
) -> Iterator[RecordT]:
    """The stream's records, oldest file first.

    A cut-off last line is skipped (and named in ``stats.cut_off``); any other
    line that is not a valid record is corruption and raises
    `PredictionLogError` naming the file and line.
    """
    if not directory.is_dir():
        raise PredictionLogError(f"{directory}: not a directory")
    stats = stats if stats is not None else ReadStats()
    for path in log_files(directory, stream):
        content = read_lines(path)
        stats.files += 1
        if not content.clean:
            stats.cut_off.append(path.name)
        for number, line in enumerate(content.lines, start=1):
            if not line.strip():
                continue
            try:
                record = record_type.model_validate_json(line)
            except ValidationError as exc:
                problem = exc.errors()[0]
                where = ".".join(str(p) for p in problem["loc"]) or "line"
                raise PredictionLogError(
                    f"{path}:{number}: not a {record_type.__name__} ({where}: {problem['msg']})"
                ) from None
            stats.records += 1
            yield record


def read_predictions(directory: Path, stats: ReadStats | None = None) -> list[PredictionRecord]:
    return list(iter_records(directory, PREDICTIONS, PredictionRecord, stats))


def read_feedback(directory: Path, stats: ReadStats | None = None) -> list[FeedbackRecord]:
    return list(iter_records(directory, FEEDBACK, FeedbackRecord, stats))


# -- joining -------------------------------------------------------------------------

MatchedBy = Literal["request_id", "id"]


@dataclass(frozen=True)
class Labelled:
    """A prediction and the outcome reported for it."""

    prediction: PredictionRecord
    outcome: bool  # the positive class was observed (the first report's)
    matched_by: MatchedBy
    observed_at: datetime
    corrections: int = 0  # later reports of the other outcome, kept aside (not counted)


@dataclass(frozen=True)
class JoinResult:
    labelled: list[Labelled]  # in prediction order
    unmatched: int  # feedback that names no logged prediction
    ambiguous: int  # feedback whose request_id names several predictions, none singled out
    superseded: int  # later reports for an already labelled prediction (repeats + corrections)
    corrections: int = 0  # of those, the ones that contradict the first report


def join(predictions: Iterable[PredictionRecord], feedback: Iterable[FeedbackRecord]) -> JoinResult:
    """Pair each prediction with the outcome reported for it.

    Feedback finds its prediction by ``request_id`` (with ``id`` too, when
    the request was a batch), else by ``id`` alone: that record's latest
    prediction made at or before ``observed_at`` (the outcome answers the
    most recent score, and a record scored every day counts once).

    **The first outcome per prediction wins** (the earliest ``received_at``,
    whichever way it matched): a later report never overwrites it. One that
    says the other outcome is a *correction*, counted on the prediction and
    in the result, so a flood of flipped replays shows up as corrections
    and leaves the figures as they were.
    """
    ordered = list(predictions)
    by_request: dict[str, list[int]] = {}
    by_id: dict[str, list[int]] = {}
    for position, prediction in enumerate(ordered):
        by_request.setdefault(prediction.request_id, []).append(position)
        if prediction.id is not None:
            by_id.setdefault(prediction.id, []).append(position)

    reports: dict[int, list[tuple[datetime, int, FeedbackRecord, MatchedBy]]] = {}
    unmatched = ambiguous = 0
    for arrival, item in enumerate(feedback):
        index, matched_by, is_ambiguous = _find(item, ordered, by_request, by_id)
        if index is None:
            ambiguous += is_ambiguous
            unmatched += not is_ambiguous
            continue
        reports.setdefault(index, []).append((item.received_at, arrival, item, matched_by))

    labelled = []
    superseded = corrections = 0
    for index in sorted(reports):
        first, *later = sorted(reports[index], key=lambda report: report[:2])
        _, _, item, matched_by = first
        contradicting = sum(report[2].outcome != item.outcome for report in later)
        superseded += len(later)
        corrections += contradicting
        labelled.append(
            Labelled(ordered[index], item.outcome, matched_by, item.observed_at, contradicting)
        )
    return JoinResult(labelled, unmatched, ambiguous, superseded, corrections)


def _find(
    item: FeedbackRecord,
    ordered: list[PredictionRecord],
    by_request: dict[str, list[int]],
    by_id: dict[str, list[int]],
) -> tuple[int | None, MatchedBy, bool]:
    """(prediction index or None, how it matched, whether it was ambiguous)."""
    if item.request_id is not None:
        candidates = by_request.get(item.request_id, [])
        if item.id is not None:
            candidates = [i for i in candidates if ordered[i].id == item.id]
        if len(candidates) == 1:
            return candidates[0], "request_id", False
        return None, "request_id", len(candidates) > 1
    assert item.id is not None  # the API requires one of the two
    earlier = [i for i in by_id.get(item.id, []) if ordered[i].time <= item.observed_at]
    if not earlier:
        return None, "id", False
    return max(earlier, key=lambda i: (ordered[i].time, i)), "id", False


# -- S3, where the service ships the log and the monitors read it ------------------


def s3_client() -> Any:
    """A boto3 S3 client with bounded timeouts; a clear error if boto3 is not installed.

    Credentials, region and endpoint (``AWS_ENDPOINT_URL``, for S3-compatible
    stores) come from boto3's usual environment variables and files.
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise PredictionLogError(
            "CHURN_PREDICTION_LOG_S3_URI is set but boto3 is not installed "
            "(the serving image leaves it out: install boto3 into it to ship the log to S3)"
        ) from None
    config = Config(
        connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
    )
    return boto3.client("s3", config=config)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b/`` → (``bucket``, ``a/b``)."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return bucket, prefix.strip("/")
