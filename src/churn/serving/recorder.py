"""A bounded in-memory buffer of JSON lines, written out in batches by a background thread.

The request path appends the bytes of its records under an uncontended lock
(well under a microsecond); writing, compressing and fsyncing happen on the
recorder's own thread, every ``flush_s`` seconds or as soon as ``batch``
records are waiting. No file or network I/O, and no waiting, on the request
path.

The records are encoded by the caller, on the request path (~5 µs each),
not by the background thread, for two measured reasons:

- with one core and one GIL, encoding on another thread costs the same CPU
  and only moves the delay onto other requests, in bursts;
- a buffer of references to live request objects (the validated record,
  tuples) keeps thousands of objects alive for a flush interval. The
  garbage collector then runs far more often and its full collections,
  which walk every object of the process, took up to 40 ms each: p99
  latency at 32 connections rose from ~21 ms to ~31 ms. Bytes objects are
  not tracked by the collector; with them, it behaves as without a log.

The buffer is bounded: when ``capacity`` records are already waiting (the
disk is slow or failing), new records are dropped and counted, never queued
without limit and never waited for. A request is not slowed down or failed
because its record could not be kept.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Protocol

from churn.serving.worker import Worker

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where batches of JSON lines go. ``write`` returns once the batch is durable."""

    def write(self, data: bytes) -> None: ...

    def tick(self) -> None:
        """Called on every wake-up, written or not: time-based rotation happens here."""

    def close(self) -> None: ...


class Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


@dataclass(frozen=True)
class RecorderMetrics:
    """The Prometheus children one recorder updates (one set per stream)."""

    written: Counter
    dropped_full: Counter
    dropped_failed: Counter
    flush_errors: Counter


class Recorder(Worker):
    """Buffer one stream's JSON lines and write them to ``sink`` from a background thread."""

    def __init__(
        self,
        stream: str,
        sink: Sink,
        metrics: RecorderMetrics,
        *,
        capacity: int,
        batch: int,
        flush_s: float,
    ) -> None:
        super().__init__(f"churn-log-{stream}", flush_s)
        self.stream = stream
        self.capacity = capacity
        self._sink = sink
        self._metrics = metrics
        self._batch = batch
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # one batch handed to the sink at a time
        self._chunks: list[bytes] = []
        self._waiting = 0  # records (lines) in _chunks
        self._closing = False

    @property
    def waiting(self) -> int:
        """Records buffered and not yet handed to the sink."""
        return self._waiting

    def add(self, lines: bytes, records: int = 1) -> bool:
        """Buffer ``records`` complete JSON lines; False if dropped because the buffer is full.

        They are kept or dropped together: a batch request is never half logged.
        """
        with self._lock:
            full = self._closing or self._waiting + records > self.capacity
            if not full:
                self._chunks.append(lines)
                self._waiting += records
                wake = self._waiting >= self._batch
        if full:
            self._metrics.dropped_full.inc(records)
            return False
        if wake:
            self.wake()
        return True

    def close(self, timeout: float = 10.0) -> None:
        """Write what is waiting, close the sink, stop the thread (at most ``timeout`` s)."""
        with self._lock:
            self._closing = True
        if self.running:
            if not self.stop(timeout):
                log.error("prediction log %s: not closed within %.0f s", self.stream, timeout)
        else:  # never started: write in the caller's thread
            self.flush()
            self._close_sink()

    def write_now(self, lines: bytes, records: int = 1) -> bool | None:
        """Buffer ``lines`` and write them (with whatever waits) in the caller's thread.

        True once written (and fsync'd), False if the write failed (they are
        lost, and counted), None if the buffer is full. For feedback, whose
        caller must learn that an outcome was not stored. Blocks: call it off
        the event loop.
        """
        with self._write_lock:  # nobody else can take these lines before we write them
            if not self.add(lines, records):
                return None
            return self._flush()

    def flush(self) -> None:
        """Hand what is waiting to the sink now (the background thread does this on its own)."""
        with self._write_lock:
            self._flush()

    def _flush(self) -> bool:
        with self._lock:
            chunks, self._chunks = self._chunks, []
            records, self._waiting = self._waiting, 0
        if not chunks:
            return True
        try:
            self._sink.write(b"".join(chunks))
        except Exception as exc:  # the thread must outlive any one batch
            self._metrics.flush_errors.inc()
            self._metrics.dropped_failed.inc(records)
            log.warning(
                "prediction log %s: %d records lost, write failed: %s",
                self.stream,
                records,
                exc,
                exc_info=not isinstance(exc, OSError),  # a bug deserves its traceback
            )
            return False
        self._metrics.written.inc(records)
        return True

    def round(self) -> None:
        self.flush()
        try:
            with self._write_lock:
                self._sink.tick()
        except Exception as exc:  # keep the thread alive; the next write retries
            self._metrics.flush_errors.inc()
            log.warning("prediction log %s: rotation failed: %s", self.stream, exc)

    def finish(self) -> None:
        self._close_sink()

    def _close_sink(self) -> None:
        try:
            with self._write_lock:
                self._sink.close()
        except Exception as exc:  # shutting down: report, do not raise
            self._metrics.flush_errors.inc()
            log.warning("prediction log %s: closing failed: %s", self.stream, exc)
