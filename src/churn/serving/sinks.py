"""Where the prediction log's batches go: local JSON-lines files, shipped to S3 if asked.

`FileSink` appends each batch to the open file and fsyncs it before the
next, rotating by size and age. A file being written is named ``*.open`` and
holds an exclusive ``flock``; rotation renames it to its final name, so a
file without ``.open`` is closed and complete. A file left ``.open`` by a
process that died (its lock went with it) is cut back to its last complete
line and renamed by `recover_open_files` when the next process starts.

`S3Shipper` uploads complete files to ``s3://bucket/prefix/<stream>/`` and
deletes them locally once stored; the directory is then a spool, and files
wait in it while S3 is unreachable. boto3 is imported only here, only when
S3 is configured: the serving image does not need it otherwise.
"""

from __future__ import annotations

import fcntl
import gzip
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from churn.monitoring.predlog import (
    GZIP,
    OPEN,
    file_name,
    log_files,
    read_lines,
    s3_client,
    split_s3_uri,
)
from churn.serving.recorder import Counter
from churn.serving.worker import Worker

log = logging.getLogger(__name__)
FILE_MODE = 0o640  # features of real records: not for every user on the host
GZIP_LEVEL = 6
_OPEN_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC


def fsync_directory(directory: Path) -> None:
    """Make a file's creation or renaming in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


@dataclass
class _OpenFile:
    path: Path  # ends with .open
    fd: int
    opened: float  # time.monotonic()
    size: int = 0  # bytes on disk, all of them complete batches

    @property
    def final(self) -> Path:
        return self.path.with_name(self.path.name.removesuffix(OPEN))


class FileSink:
    """Batches appended to rotated files in ``directory``; durable when `write` returns."""

    def __init__(
        self,
        directory: Path,
        stream: str,
        *,
        rotate_bytes: int,
        rotate_s: float,
        compress: bool,
        on_complete: Callable[[Path], None] | None = None,
    ) -> None:
        self.directory = directory
        self.stream = stream
        self._rotate_bytes = rotate_bytes
        self._rotate_s = rotate_s
        self._compress = compress
        self._on_complete = on_complete
        self._host = socket.gethostname()
        self._sequence = 0
        self._file: _OpenFile | None = None

    def write(self, data: bytes) -> None:
        if self._file is not None and self._too_old(self._file):
            self._finish()
        current = self._file if self._file is not None else self._open()
        payload = gzip.compress(data, GZIP_LEVEL, mtime=0) if self._compress else data
        try:
            _write_all(current.fd, payload)
            os.fsync(current.fd)
        except OSError:
            # Cut the partial batch off (if the disk lets us) and start a new
            # file next time, so no later batch lands after a broken one.
            try:
                os.ftruncate(current.fd, current.size)
            finally:
                self._finish()
            raise
        current.size += len(payload)
        if current.size >= self._rotate_bytes:
            self._finish()

    def tick(self) -> None:
        if self._file is not None and self._too_old(self._file):
            self._finish()

    def close(self) -> None:
        if self._file is not None:
            self._finish()

    def _too_old(self, current: _OpenFile) -> bool:
        return time.monotonic() - current.opened >= self._rotate_s

    def _open(self) -> _OpenFile:
        self._sequence += 1
        name = file_name(
            self.stream,
            datetime.now(UTC),
            self._host,
            os.getpid(),
            self._sequence,
            compress=self._compress,
        )
        path = self.directory / (name + OPEN)
        fd = os.open(path, _OPEN_FLAGS, FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # "a live process writes this file"
        fsync_directory(self.directory)
        self._file = _OpenFile(path, fd, time.monotonic())
        return self._file

    def _finish(self) -> None:
        """Rename the open file to its final name and close it (releasing the lock)."""
        current, self._file = self._file, None
        if current is None:
            return
        try:
            if current.size == 0:
                current.path.unlink()
                return
            current.path.rename(current.final)
            fsync_directory(self.directory)
        finally:
            os.close(current.fd)
        if self._on_complete is not None:
            self._on_complete(current.final)


def recover_open_files(directory: Path, stream: str) -> list[Path]:
    """Close the ``.open`` files of processes that died: cut to the last complete line, rename.

    A file whose lock is held belongs to a live process (another worker on
    the same directory) and is left alone. Returns the recovered files.
    """
    recovered: list[Path] = []
    for path in directory.glob(f"{stream}-*{OPEN}"):
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:  # recovered by another process meanwhile
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            if not path.exists():  # recovered between our glob and our lock
                continue
            final = path.with_name(path.name.removesuffix(OPEN))
            content = read_lines(path)
            if not content.lines:
                path.unlink()
                continue
            if not content.clean:
                _rewrite(final, content.lines, compress=final.name.endswith(GZIP))
                path.unlink()
                log.warning(
                    "%s: cut off an incomplete last line (%d bytes)", final, len(content.cut_off)
                )
            else:
                path.rename(final)
            fsync_directory(directory)
            recovered.append(final)
        finally:
            os.close(fd)
    return sorted(recovered)


def _rewrite(target: Path, lines: list[bytes], *, compress: bool) -> None:
    data = b"".join(line + b"\n" for line in lines)
    payload = gzip.compress(data, GZIP_LEVEL, mtime=0) if compress else data
    partial = target.with_name(target.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, FILE_MODE)
    try:
        _write_all(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)
    partial.replace(target)


# -- S3 ------------------------------------------------------------------------------


class S3Shipper(Worker):
    """Upload a stream's complete files from the spool directory, then delete them.

    Runs on its own thread, woken when a file is completed and every
    ``retry_s`` seconds (to retry after a failure). Files are uploaded oldest
    first; a failure stops the round and is counted, and the file waits.
    """

    def __init__(
        self,
        uri: str,
        directory: Path,
        stream: str,
        upload_errors: Counter,
        *,
        retry_s: float = 30.0,
    ) -> None:
        super().__init__(f"churn-log-{stream}-s3", retry_s)
        self.bucket, self.prefix = split_s3_uri(uri)
        self.directory = directory
        self.stream = stream
        self._client = s3_client()
        self._upload_errors = upload_errors

    def key(self, path: Path) -> str:
        return "/".join(part for part in (self.prefix, self.stream, path.name) if part)

    def notify(self, _path: Path | None = None) -> None:
        """A file was completed: ship it soon (usable as `FileSink`'s ``on_complete``)."""
        self.wake()

    def close(self, timeout: float = 20.0) -> None:
        """Ship what is complete, then stop (at most ``timeout`` s; the rest waits on disk)."""
        if not self.stop(timeout):
            log.error(
                "prediction log %s: S3 upload not finished within %.0f s", self.stream, timeout
            )

    def ship(self) -> int:
        """Upload every complete file of the stream, oldest first; the number uploaded."""
        shipped = 0
        for path in log_files(self.directory, self.stream, include_open=False):
            content_type = (
                "application/gzip" if path.name.endswith(GZIP) else "application/x-ndjson"
            )
            try:
                self._client.upload_file(
                    str(path), self.bucket, self.key(path), ExtraArgs={"ContentType": content_type}
                )
            except FileNotFoundError:  # shipped by another worker sharing the directory
                continue
            except Exception as exc:  # botocore's errors, network errors: retry later
                self._upload_errors.inc()
                log.warning("prediction log: upload of %s failed, will retry: %s", path.name, exc)
                break
            path.unlink(missing_ok=True)
            shipped += 1
        return shipped

    def round(self) -> None:
        try:
            self.ship()
        except Exception:  # e.g. the spool directory vanished: keep the thread
            self._upload_errors.inc()
            log.exception("prediction log: shipping %s failed", self.stream)
