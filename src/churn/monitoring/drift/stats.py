"""The statistics of drift, on count vectors: bins, PSI and the chi-square test.

Pure functions of numbers (numpy and the standard library only): they know
nothing of frames, files or the data contract, so a live service can call
them on the counts it keeps per request.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

# Added to every bin's count before shares are taken, so an empty bin gives
# a large but finite PSI term instead of log(0). Half a row is Jeffreys' prior;
# it vanishes against thousands of rows.
PSEUDO_COUNT = 0.5
# p-values below this are printed as "<1e-12": beyond it the chi-square
# approximation itself says nothing more.
SMALLEST_P_SHOWN = 1e-12

Kind = Literal["numeric", "categorical"]
Counts = npt.NDArray[np.int64]


def is_missing(value: object) -> bool:
    """Whether one value is missing: None, NaN or pandas' NA (no pandas import needed)."""
    if value is None:
        return True
    try:
        return bool(value != value)  # noqa: PLR0124 (NaN is the one value unequal to itself)
    except TypeError:  # pandas' NA: a comparison with it is NA, which has no truth value
        return True


def bin_counts(
    name: str,
    kind: Kind,
    edges: Sequence[float],
    levels: Sequence[str],
    values: Iterable[float | str | None] | npt.NDArray[Any],
    *,
    missing: bool = False,
) -> Counts:
    """Counts per bin of ``values``: numeric bins split at ``edges`` (values
    beyond them in the end bins), categorical bins one per level, and with
    ``missing`` one more bin at the end for missing values (None, NaN).

    Raises ValueError naming ``name`` for a value that is not one of ``levels``,
    or for a missing value when there is no bin for it.
    """
    if kind == "numeric":
        array = np.asarray(values, dtype=np.float64)
        index = np.searchsorted(np.asarray(edges, dtype=np.float64), array, side="right")
        bins = len(edges) + 1
        blank = np.isnan(array)
    else:
        lookup: dict[object, int] = {level: i for i, level in enumerate(levels)}
        if missing:
            lookup[None] = len(levels)
        try:
            index = np.fromiter(
                (lookup[None if is_missing(v) else str(v)] for v in values), dtype=np.intp
            )
        except KeyError as exc:
            value = "a missing value" if exc.args[0] is None else repr(exc.args[0])
            raise ValueError(f"{name}: {value} is not one of {list(levels)}") from None
        bins = len(levels)
        blank = index == bins
    if missing:
        index = np.where(blank, bins, index)
        bins += 1
    elif blank.any():
        raise ValueError(f"{name}: a missing value, and the column may not be missing")
    return np.bincount(index, minlength=bins).astype(np.int64)


def psi(reference: Sequence[int] | Counts, current: Sequence[int] | Counts) -> float:
    """Population stability index of two count vectors over the same bins (>= 0)."""
    ref = np.asarray(reference, dtype=np.float64) + PSEUDO_COUNT
    cur = np.asarray(current, dtype=np.float64) + PSEUDO_COUNT
    p, q = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-square with ``dof`` degrees of freedom.

    Closed form for integer degrees of freedom (the regularised upper
    incomplete gamma function of a whole or half-integer order), summed in
    log space so that large statistics underflow to 0 instead of overflowing.
    Matches ``scipy.stats.chi2.sf`` (tested) without needing scipy at run time.
    """
    if dof < 1:
        raise ValueError(f"degrees of freedom must be >= 1, not {dof}")
    if statistic <= 0:
        return 1.0
    half = statistic / 2
    log_half = math.log(half)
    if dof % 2 == 0:  # Q(m, y) = e^-y * sum_{i<m} y^i / i!
        terms = [-half + i * log_half - math.lgamma(i + 1) for i in range(dof // 2)]
        head = 0.0
    else:  # Q(m + 1/2, y) = erfc(sqrt y) + e^-y * sum_{i<m} y^(i+1/2) / Gamma(i + 3/2)
        terms = [-half + (i + 0.5) * log_half - math.lgamma(i + 1.5) for i in range(dof // 2)]
        head = math.erfc(math.sqrt(half))
    return min(1.0, head + math.fsum(math.exp(t) for t in terms))


def chi2_homogeneity(
    reference: Sequence[int] | Counts, current: Sequence[int] | Counts
) -> tuple[float, int, float]:
    """Chi-square test that two count vectors come from one distribution.

    Returns (statistic, degrees of freedom, p-value). Bins empty in both are
    dropped; with fewer than two bins left there is nothing to test (p = 1).
    """
    table = np.vstack([np.asarray(reference, np.float64), np.asarray(current, np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    dof = table.shape[1] - 1
    if dof < 1 or (table.sum(axis=1) == 0).any():
        return 0.0, max(dof, 0), 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, dof, chi2_sf(statistic, dof)


def format_p(p_value: float) -> str:
    """A p-value for people: two significant digits, or ``<1e-12`` below that."""
    return f"<{SMALLEST_P_SHOWN:.0e}" if p_value < SMALLEST_P_SHOWN else f"{p_value:.2g}"
