"""Reading records in chunks and writing results under a temporary name (local or S3).

Paths are local file names or ``s3://bucket/key`` URIs, opened through
pyarrow's file systems. S3 credentials, region and endpoint come from the
usual AWS variables (``AWS_ACCESS_KEY_ID``..., ``AWS_ENDPOINT_URL`` for an
S3-compatible store), as for the prediction log; the client gives up after
bounded timeouts and three attempts, so an unreachable endpoint is an error
within seconds, not a hang.

Inputs are read as text, every contract column a string, whatever the file
stores: the domain's repairs and the typing are then the pipeline's own
(`churn.core.data.clean`), for a CSV export and a typed Parquet file alike.

- CSV: pyarrow's streaming reader, ``CSV_BLOCK_BYTES`` of the file per chunk;
- Parquet: ``CHUNK_ROWS`` rows per chunk, read row group by row group.

Outputs are written to ``<name>.tmp-<random>`` and renamed when complete
(on S3: copied, then the temporary key deleted), so a failed run leaves no
partial file under the final name.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from churn.core.errors import DataError, first_line

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow.fs as pafs

CHUNK_ROWS = 65_536
CSV_BLOCK_BYTES = 8 << 20
HEADER_BLOCK_BYTES = 1 << 16  # read to find a CSV's columns
S3_CONNECT_TIMEOUT_S = 5
S3_REQUEST_TIMEOUT_S = 30
S3_ATTEMPTS = 3
PARQUET_SUFFIXES = (".parquet", ".pq")
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class Location:
    """A file on a pyarrow file system: ``uri`` as the user wrote it."""

    uri: str
    filesystem: pafs.FileSystem
    path: str

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")

    def sibling(self, suffix: str) -> Location:
        """The file next to this one named ``<stem><suffix>`` (stem without .parquet)."""
        uri = self.uri
        for known in PARQUET_SUFFIXES:
            if uri.endswith(known):
                uri = uri.removesuffix(known)
                break
        return locate(uri + suffix, self.filesystem)

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        found: bool = _info(self).type != pafs.FileType.NotFound
        return found


def s3_filesystem() -> pafs.FileSystem:
    """An S3 client from the usual AWS variables, with bounded timeouts and retries."""
    import pyarrow.fs as pafs

    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    options: dict[str, Any] = {}
    if endpoint:
        scheme, _, rest = endpoint.partition("://")
        options = {"endpoint_override": rest or scheme, "scheme": scheme if rest else "https"}
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if region:
        options["region"] = region
    return pafs.S3FileSystem(
        connect_timeout=S3_CONNECT_TIMEOUT_S,
        request_timeout=S3_REQUEST_TIMEOUT_S,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=S3_ATTEMPTS),
        **options,
    )


def locate(uri: str, filesystem: pafs.FileSystem | None = None) -> Location:
    """Where ``uri`` is: ``s3://bucket/key`` on S3, anything else a local path."""
    import pyarrow.fs as pafs

    if uri.startswith("s3://"):
        path = uri.removeprefix("s3://")
        if "/" not in path.strip("/"):
            raise DataError(f"{uri}: an S3 location needs a bucket and a key (s3://bucket/key)")
        s3 = filesystem if isinstance(filesystem, pafs.S3FileSystem) else s3_filesystem()
        return Location(uri, s3, path)
    if "://" in uri:
        raise DataError(f"{uri}: only local paths and s3:// URIs are supported")
    return Location(uri, pafs.LocalFileSystem(), str(Path(uri).absolute()))


def _info(location: Location) -> pafs.FileInfo:
    try:
        return location.filesystem.get_file_info(location.path)
    except OSError as exc:
        raise DataError(f"{location.uri}: cannot reach it ({first_line(exc)})") from None


# -- reading ---------------------------------------------------------------------------


@dataclass
class Input:
    """An input file opened for chunked reading of the columns scoring needs."""

    location: Location
    columns: tuple[str, ...]  # the ones it has, in the order asked for
    missing: tuple[str, ...]  # the ones it lacks
    parquet: bool
    chunk_rows: int = CHUNK_ROWS  # Parquet rows per chunk
    csv_block_bytes: int = CSV_BLOCK_BYTES  # CSV bytes per chunk

    def chunks(self) -> Iterator[pd.DataFrame]:
        """The file's rows, chunk by chunk, as text frames of ``columns``."""
        batches = self._parquet_batches() if self.parquet else self._csv_batches()
        for batch in batches:
            if batch.num_rows:
                yield _as_text(batch).to_pandas()

    def _csv_batches(self) -> Iterator[pa.RecordBatch]:
        import pyarrow.csv as pacsv

        stream = self.location.filesystem.open_input_stream(
            self.location.path, compression="detect"
        )
        try:
            reader = pacsv.open_csv(
                stream,
                read_options=pacsv.ReadOptions(block_size=self.csv_block_bytes),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(self.columns, pa.string()),
                    include_columns=list(self.columns),
                    strings_can_be_null=False,
                ),
            )
            yield from _read_all(reader, self.location)
        finally:
            stream.close()

    def _parquet_batches(self) -> Iterator[pa.RecordBatch]:
        import pyarrow.parquet as pq

        with self.location.filesystem.open_input_file(self.location.path) as handle:
            parquet = pq.ParquetFile(handle)
            # One row group at a time: a reader over the whole file pre-buffers
            # every row group it has read until it is done (memory grew with the
            # file: 24 -> 83 MiB of Arrow buffers over a 3M-row file); per row
            # group, it holds one row group's compressed bytes at most.
            for group in range(parquet.num_row_groups):
                yield from _read_all(
                    parquet.iter_batches(
                        batch_size=self.chunk_rows, columns=list(self.columns), row_groups=[group]
                    ),
                    self.location,
                )


def _read_all(batches: Any, location: Location) -> Iterator[pa.RecordBatch]:
    """The batches of a reader, with a read error as a one-line `DataError`."""
    iterator = iter(batches)
    while True:
        try:
            batch = next(iterator)
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{location.uri}: not readable ({first_line(exc)})") from None
        yield batch


def _as_text(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Every column as strings (numbers written in their shortest round-trip form)."""
    columns = [
        column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
        for column in batch.columns
    ]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def open_input(
    uri: str,
    wanted: tuple[str, ...],
    *,
    chunk_rows: int = CHUNK_ROWS,
    csv_block_bytes: int = CSV_BLOCK_BYTES,
) -> Input:
    """Open ``uri`` for reading ``wanted`` columns; `DataError` if it cannot be read at all."""
    import pyarrow.fs as pafs

    location = locate(uri)
    info = _info(location)
    if info.type == pafs.FileType.NotFound:
        raise DataError(f"{uri}: no such file")
    if info.type == pafs.FileType.Directory:
        raise DataError(f"{uri}: is a directory, not a CSV or Parquet file")
    if info.size == 0:
        raise DataError(f"{uri}: the file is empty (not even a header row)")
    parquet = _is_parquet(location)
    try:
        names = _parquet_names(location) if parquet else _csv_names(location)
    except (pa.ArrowInvalid, OSError) as exc:
        kind = "Parquet" if parquet else "CSV"
        raise DataError(f"{uri}: not a readable {kind} file ({first_line(exc)})") from None
    present = tuple(c for c in wanted if c in names)
    missing = tuple(c for c in wanted if c not in names)
    return Input(location, present, missing, parquet, chunk_rows, csv_block_bytes)


def _is_parquet(location: Location) -> bool:
    if location.uri.endswith(PARQUET_SUFFIXES):
        return True
    if location.uri.endswith((".csv", ".csv.gz")):
        return False
    try:
        with location.filesystem.open_input_file(location.path) as handle:
            magic: bytes = handle.read(4)
            return magic == PARQUET_MAGIC
    except OSError as exc:
        raise DataError(f"{location.uri}: not readable ({first_line(exc)})") from None


def _parquet_names(location: Location) -> list[str]:
    import pyarrow.parquet as pq

    with location.filesystem.open_input_file(location.path) as handle:
        return list(pq.ParquetFile(handle).schema_arrow.names)


def _csv_names(location: Location) -> list[str]:
    import pyarrow.csv as pacsv

    with location.filesystem.open_input_stream(location.path, compression="detect") as stream:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=HEADER_BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=False),
        )
        return list(reader.schema.names)


# -- writing ---------------------------------------------------------------------------


class StagedFile:
    """A file written under a temporary name and renamed into place by `commit`."""

    def __init__(self, location: Location) -> None:
        self.location = location
        self.temporary = f"{location.path}.tmp-{uuid.uuid4().hex[:12]}"
        if not location.is_s3:
            Path(location.path).parent.mkdir(parents=True, exist_ok=True)
        self.stream = location.filesystem.open_output_stream(self.temporary)

    def commit(self) -> None:
        self.stream.close()
        self.location.filesystem.move(self.temporary, self.location.path)

    def abort(self) -> None:
        """Close and delete the temporary file (quietly: this runs on the failure path)."""
        with contextlib.suppress(OSError):
            self.stream.close()
        with contextlib.suppress(OSError):
            self.location.filesystem.delete_file(self.temporary)


class ParquetOutput:
    """A Parquet file written chunk by chunk (one row group each) under a temporary name."""

    def __init__(self, location: Location, schema: pa.Schema) -> None:
        import pyarrow.parquet as pq

        self.schema = schema
        self.file = StagedFile(location)
        try:
            self.writer = pq.ParquetWriter(self.file.stream, schema, compression="zstd")
        except BaseException:
            self.file.abort()
            raise

    def write(self, frame: pd.DataFrame) -> None:
        self.writer.write_table(
            pa.Table.from_arrays(
                [_arrow_column(frame[field.name], field.type) for field in self.schema],
                schema=self.schema,
            )
        )

    def commit(self) -> None:
        self.writer.close()
        self.file.commit()

    def abort(self) -> None:
        with contextlib.suppress(OSError, pa.ArrowException):
            self.writer.close()
        self.file.abort()


def _arrow_column(values: pd.Series, arrow_type: pa.DataType) -> pa.Array:
    """One column for Arrow; time-zone-aware times as UTC instants (pyarrow's own
    conversion reads ``Series.values``, which pandas deprecates for them)."""
    if pa.types.is_timestamp(arrow_type):
        return pa.array(values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(), arrow_type)
    return pa.array(values.to_numpy(), type=arrow_type, from_pandas=True)


def write_text(location: Location, text: str) -> None:
    """A small text file (the summary), written whole under a temporary name."""
    staged = StagedFile(location)
    try:
        staged.stream.write(text.encode())
        staged.commit()
    except BaseException:
        staged.abort()
        raise


def remove_if_present(location: Location) -> None:
    """Delete a file that a refused or failed run must not leave behind."""
    if location.exists():
        location.filesystem.delete_file(location.path)
