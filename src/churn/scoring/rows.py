"""The data contract's checks, row by row: why each rejected row is rejected.

`churn validate` (Great Expectations) judges a whole file; `churn drift`
refuses a file at its first problem. Batch scoring needs a third answer:
which rows may be scored, and, for the others, a reason a person can act
on. Every check is vectorised over a chunk (pandas, numpy); only the
rejected rows have their reason formatted, so a clean chunk costs a few
column comparisons.

A row is rejected when its id is missing or does not match the contract's
pattern (the output is keyed by it), when a feature is missing, not a
number, not an integer where the contract says ``int``, outside its range,
not one of its levels, or when a cross-field rule does not hold. Columns
the contract does not know are ignored, as the drift check ignores them.
Duplicate ids are not checked: that needs every id in memory at once, and
the scoring memory bound is one chunk (docs/scoring.md).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Callable

    from churn.core.contract import Contract, Numeric

SEPARATOR = "; "


class _Reasons:
    """Reasons per row, added check by check; "" means the row passed every check."""

    def __init__(self, rows: int) -> None:
        self.parts: list[list[str]] | None = None
        self.rows = rows

    def add(self, bad: pd.Series | np.ndarray, message: Callable[[int], str]) -> None:
        mask = np.asarray(bad, dtype=bool)
        if not mask.any():
            return
        if self.parts is None:
            self.parts = [[] for _ in range(self.rows)]
        for position in np.flatnonzero(mask):
            self.parts[position].append(message(int(position)))

    def result(self) -> np.ndarray:
        out = np.full(self.rows, "", dtype=object)
        if self.parts is not None:
            for position, parts in enumerate(self.parts):
                if parts:
                    out[position] = SEPARATOR.join(parts)
        return out


def _constant(message: str) -> Callable[[int], str]:
    return lambda _: message


def _missing(values: pd.Series, suspects: np.ndarray | None = None) -> np.ndarray:
    """Which values are missing (null, empty or blank); only ``suspects`` are looked at
    when given (the rows another check already failed: usually none)."""
    missing = np.zeros(len(values), dtype=bool)
    positions = np.arange(len(values)) if suspects is None else np.flatnonzero(suspects)
    if len(positions):
        text = values.iloc[positions].astype("string")
        blank = text.isna() | text.str.strip().eq("").fillna(value=True)
        missing[positions] = np.asarray(blank, dtype=bool)
    return missing


def reasons(frame: pd.DataFrame, contract: Contract) -> np.ndarray:
    """Why each row of ``frame`` breaks the contract ("" for a valid row), in row order.

    ``frame`` is a cleaned chunk (`churn.core.data.clean`: the domain's repairs
    applied, numbers typed where they parse) holding the id and every
    feature column; the caller refuses a file without them.
    """
    found = _Reasons(len(frame))
    column = frame[contract.id.name]
    text = column.astype("string")
    matches = np.asarray(text.str.fullmatch(contract.id.pattern).fillna(value=False), dtype=bool)
    if text.str.isascii().fillna(value=True).all():  # one pass; per row only if not
        good = matches
    else:
        good = matches & np.asarray(
            text.map(str.isascii, na_action="ignore").fillna(value=False), dtype=bool
        )
    missing = _missing(column, ~good)
    found.add(missing, lambda _: f"{contract.id.name} is missing")
    bad_id = ~missing & ~good
    found.add(
        bad_id, lambda i: f"{contract.id.name}: {column.iat[i]!r} does not match the id pattern"
    )
    for numeric in contract.numeric:
        _check_number(found, frame[numeric.name], numeric.name, numeric.kind, numeric)
    for categorical in contract.categorical:
        _check_level(found, frame[categorical.name], categorical.name, categorical.levels)
    for rule in contract.implications:
        when = np.asarray(frame[rule.when].eq(rule.when_value).fillna(value=False), dtype=bool)
        for name in rule.then:
            then = np.asarray(frame[name].eq(rule.then_value).fillna(value=False), dtype=bool)
            message = (
                f"{name} must be {rule.then_value!r} exactly when {rule.when} is "
                f"{rule.when_value!r}"
            )
            found.add(when != then, _constant(message))
    return found.result()


def _check_level(found: _Reasons, values: pd.Series, name: str, levels: tuple[str, ...]) -> None:
    outside = ~np.asarray(values.isin(levels), dtype=bool)
    missing = _missing(values, outside)
    found.add(missing, lambda _: f"{name} is missing")
    unknown = outside & ~missing
    found.add(unknown, lambda i: f"{name}: {values.iat[i]!r} is not one of its levels")


def _check_number(
    found: _Reasons, values: pd.Series, name: str, kind: str, limits: Numeric
) -> None:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy(na_value=np.nan)
    missing = _missing(values, np.isnan(numbers))
    found.add(missing, lambda _: f"{name} is missing")
    not_number = ~missing & np.isnan(numbers)
    found.add(not_number, lambda i: f"{name}: {values.iat[i]!r} is not a number")
    parsed = ~np.isnan(numbers)
    if kind == "int":
        fractional = parsed & (np.mod(numbers, 1, where=parsed, out=np.zeros_like(numbers)) != 0)
        found.add(fractional, lambda i: f"{name}: {values.iat[i]!r} is not an integer")
    with np.errstate(invalid="ignore"):
        outside = parsed & ((numbers < limits.min_value) | (numbers > limits.max_value))
    found.add(
        outside,
        lambda i: f"{name}: {numbers[i]:g} is outside {limits.min_value:g}..{limits.max_value:g}",
    )
