"""Live drift: the service's recent records against the model's training data.

`train` saves a `churn.monitoring.drift.ModelDriftProfile` next to the model
(``drift_profile.json``): the training split's bins and counts per feature,
and the ``drift`` rule of ``params.yaml``. With it, the service

- counts every scored record into a sliding window (`DriftWindow.add`, on
  the request path: ~4 µs for ``/predict``, ~2 µs a record in a batch);
- when ``/metrics`` is read, and at most every ``CHURN_DRIFT_INTERVAL_S``,
  compares the window with the reference (`churn.monitoring.drift.compare_counts`: the
  rule of ``churn drift``, ~1 ms) and sets ``churn_feature_drift{feature}``
  (PSI), ``churn_drift_detected`` (the verdict) and
  ``churn_drift_window_samples``.

Why at scrape time, not in a background task or thread: the numbers matter
only when someone reads them, and `/metrics` is that moment; the result is
cached, so several scrapers cost one comparison per interval; and there is
no task to start, watch and cancel. A thread would not take the work off
the event loop anyway: the comparison is Python holding the GIL. Both the
counting and the comparison run on the event loop, where nothing can
interleave with them; the window's lock makes it correct from any thread too.

numpy and the standard library only, like the rest of the request path.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from churn.core.contract import api_name
from churn.monitoring.drift import compare_counts
from churn.serving.schemas import attributes

if TYPE_CHECKING:
    from churn.monitoring.drift import Counts, DriftResult, ModelDriftProfile, ReferenceProfile
    from churn.serving.loader import LoadedModel
    from churn.serving.middleware import ServiceMetrics
    from churn.serving.schemas import RecordBase
    from churn.serving.settings import ServingSettings

log = logging.getLogger(__name__)
# The window moves in steps of a tenth of its size: a finer ring costs more
# memory and more work per step, a coarser one makes the window's size jump.
BLOCKS = 10
# From this many records in one call (a batch), counting column by column
# with numpy beats counting row by row: ~1.8 against ~3.3 µs a record.
COLUMNS_FROM = 32


class DriftWindow:
    """Counts per bin, for every feature of a profile, of the last ``size`` records.

    The window is a ring of `BLOCKS` sealed blocks of ``ceil(size / BLOCKS)``
    records each, plus the block being filled. Adding a record is one
    increment per feature in a flat list of all the bins; when the block is
    full it is sealed (one array added to the running total) and the oldest
    block leaves as a whole (one array subtracted). So once traffic has filled
    it, the window holds the last ``size`` records and up to a tenth more:
    never fewer, so a verdict needing ``size`` records is always reached.

    The bins are the profile's own: numeric values are placed with the same
    `bisect_right` on the same edges as `FeatureProfile.bin_index` (numpy's
    ``searchsorted(side="right")`` for a batch), levels through a dictionary;
    a test checks the window against `churn drift`'s counts on every real
    record.
    """

    def __init__(self, reference: ReferenceProfile, size: int) -> None:
        if size < BLOCKS:
            raise ValueError(f"a window of {size} records is smaller than its {BLOCKS} blocks")
        self.block_size = -(-size // BLOCKS)
        self.slices: dict[str, slice] = {}
        numeric_names: list[str] = []
        categorical_names: list[str] = []
        # (edges, first bin) per numeric feature; level -> bin per categorical one.
        self._numeric: list[tuple[tuple[float, ...], int]] = []
        self._categorical: list[dict[str | None, int]] = []
        self._numeric_missing: list[int | None] = []  # the null bin, for nullable features
        start = 0
        for feature in reference.features:
            self.slices[feature.name] = slice(start, start + len(feature.counts))
            # A nullable feature's last bin counts its nulls (None in the record).
            missing_bin = start + len(feature.counts) - 1 if feature.missing else None
            if feature.kind == "numeric":
                numeric_names.append(api_name(feature.name))
                self._numeric.append((feature.edges, start))
                self._numeric_missing.append(missing_bin)
            else:
                categorical_names.append(api_name(feature.name))
                bins: dict[str | None, int] = {
                    level: start + i for i, level in enumerate(feature.levels)
                }
                if missing_bin is not None:
                    bins[None] = missing_bin
                self._categorical.append(bins)
            start += len(feature.counts)
        self._bins = start
        self._numeric_edges = [np.asarray(edges, dtype=np.float64) for edges, _ in self._numeric]
        self._numeric_values = attributes(numeric_names)
        self._categorical_values = attributes(categorical_names)
        self._filling = [0] * self._bins
        self._filled = 0
        self._sealed: deque[Counts] = deque()
        self._sealed_total: Counts = np.zeros(self._bins, dtype=np.int64)
        self._lock = threading.Lock()

    def add(self, records: Sequence[RecordBase]) -> None:
        """Count validated records (the API's model, whose levels are the contract's)."""
        with self._lock:
            done = 0
            while done < len(records):
                part = records[done : done + self.block_size - self._filled]
                if len(part) < COLUMNS_FROM:
                    self._count_rows(part)
                else:
                    self._count_columns(part)
                self._filled += len(part)
                done += len(part)
                if self._filled == self.block_size:
                    self._seal()

    def _count_rows(self, records: Sequence[RecordBase]) -> None:
        counts = self._filling
        numeric, categorical = self._numeric, self._categorical
        for record in records:
            for value, (edges, start), missing in zip(
                self._numeric_values(record), numeric, self._numeric_missing, strict=True
            ):
                if value is not None:
                    counts[start + bisect_right(edges, value)] += 1
                elif missing is not None:
                    counts[missing] += 1
                else:  # the record model refuses null here: a bug, not bad input
                    raise ValueError("a null in a feature that may not be missing")
            for level, bins in zip(self._categorical_values(record), categorical, strict=True):
                counts[bins[level]] += 1

    def _count_columns(self, records: Sequence[RecordBase]) -> None:
        """As `_count_rows`, a column at a time (numpy's searchsorted is bisect_right)."""
        numeric = zip(*map(self._numeric_values, records), strict=True)
        categorical = zip(*map(self._categorical_values, records), strict=True)
        bins = [
            _numeric_bins(np.asarray(column, dtype=np.float64), edges, start, missing)
            for column, edges, (_, start), missing in zip(
                numeric, self._numeric_edges, self._numeric, self._numeric_missing, strict=True
            )
        ]
        bins += [
            np.fromiter(map(levels.__getitem__, column), dtype=np.intp, count=len(records))
            for column, levels in zip(categorical, self._categorical, strict=True)
        ]
        added = np.bincount(np.concatenate(bins), minlength=self._bins).tolist()
        self._filling = [a + b for a, b in zip(self._filling, added, strict=True)]

    def _seal(self) -> None:
        block = np.asarray(self._filling, dtype=np.int64)
        if len(self._sealed) == BLOCKS:
            self._sealed_total -= self._sealed.popleft()
        self._sealed.append(block)
        self._sealed_total += block
        self._filling = [0] * self._bins
        self._filled = 0

    @property
    def rows(self) -> int:
        """RecordBases in the window now."""
        return len(self._sealed) * self.block_size + self._filled

    def counts(self) -> tuple[int, dict[str, Counts]]:
        """(records in the window, counts per bin by feature), as of now."""
        with self._lock:
            total = self._sealed_total + np.asarray(self._filling, dtype=np.int64)
            rows = self.rows
        return rows, {name: total[bins] for name, bins in self.slices.items()}


def _numeric_bins(
    values: np.ndarray, edges: np.ndarray, start: int, missing: int | None
) -> np.ndarray:
    """The bin of each value (None became NaN): its range's, or the null bin."""
    bins = np.searchsorted(edges, values, side="right") + start
    return bins if missing is None else np.where(np.isnan(values), missing, bins)


class DriftMonitor:
    """The served model's drift profile, the window of recent records, and the gauges.

    A new monitor starts with an empty window and no verdict, and clears the
    gauges a previous one set: when the served model changes, replace the
    monitor (`start`), since the window's bins are its profile's.
    """

    def __init__(
        self,
        profile: ModelDriftProfile,
        metrics: ServiceMetrics,
        *,
        window: int,
        min_samples: int,
        interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self.window = DriftWindow(profile.reference, window)
        self.min_samples = min_samples
        self.interval_s = interval_s
        self._metrics = metrics
        self._clock = clock
        self._computed_at: float | None = None
        self._result: DriftResult | None = None
        _no_verdict(metrics)

    @classmethod
    def start(
        cls, model: LoadedModel, settings: ServingSettings, metrics: ServiceMetrics
    ) -> DriftMonitor | None:
        """The monitor for ``model``, or None (and an INFO line) if it has no drift profile."""
        if model.drift_profile is None:
            log.info("live drift metrics off: the model has no drift profile (%s)", model.source)
            _no_verdict(metrics)
            return None
        log.info(
            "live drift: the last %d records against the training data, "
            "a verdict once %d are in, recomputed at most every %g s",
            settings.drift_window,
            settings.drift_min_samples,
            settings.drift_interval_s,
        )
        return cls(
            model.drift_profile,
            metrics,
            window=settings.drift_window,
            min_samples=settings.drift_min_samples,
            interval_s=settings.drift_interval_s,
        )

    def add(self, records: Sequence[RecordBase]) -> None:
        """Count scored records into the window (the request path's hook)."""
        self.window.add(records)

    def refresh(self) -> DriftResult | None:
        """Compare the window with the reference and set the gauges, unless done recently.

        Returns the latest comparison; None while the window holds fewer
        than ``min_samples`` records (``churn_drift_detected`` stays NaN).
        """
        now = self._clock()
        if self._computed_at is not None and now - self._computed_at < self.interval_s:
            return self._result
        self._computed_at = now
        rows, counts = self.window.counts()
        self._metrics.drift_window.set(rows)
        if rows < self.min_samples:
            return None
        sources = ("training data", f"last {rows} records")
        try:
            result = compare_counts(
                self.profile.reference, counts, self.profile.params, sources=sources
            )
        except Exception:  # a failed scrape would look like an outage: log, leave no verdict
            log.exception("live drift: comparing the window with the training data failed")
            self._metrics.drift_detected.set(math.nan)
            self._result = None
            return None
        for feature in result.features:
            self._metrics.feature_drift.labels(feature.feature).set(feature.psi)
        self._metrics.drift_detected.set(1.0 if result.drift else 0.0)
        before = self._result
        if before is None or before.drift != result.drift:
            level = logging.WARNING if result.drift else logging.INFO
            log.log(level, "live drift: %s", result.headline())
        self._result = result
        return result


def _no_verdict(metrics: ServiceMetrics) -> None:
    """The drift gauges as before any comparison: no PSI, no verdict, an empty window."""
    metrics.feature_drift.clear()
    metrics.drift_detected.set(math.nan)
    metrics.drift_window.set(0)
