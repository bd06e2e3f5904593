"""The data contract's checks, row by row: why each rejected row is rejected.

`churn validate` (Great Expectations) judges a whole file; `churn drift`
refuses a file at its first problem. Batch scoring needs a third answer:
which rows may be scored, and, for the others, a reason a person can act
on. Every check is vectorised over a chunk (pandas, numpy); only the
rejected rows have their reason formatted, so a clean chunk costs a few
column comparisons.

A row is rejected when its id is missing or does not match the contract's
pattern (the output is keyed by it), when a feature is missing (unless the
contract lets it be: ``max_missing``), not a number, not an integer where
the contract says ``int``, outside its range, not one of its levels, or
when a cross-field rule does not hold (a rule does not apply to a blank).
Columns the contract does not know are ignored, as the drift check ignores
them.
Duplicate ids are not checked: that needs every id in memory at once, and
the scoring memory bound is one chunk (docs/scoring.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

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


@dataclass(frozen=True)
class Checked:
    """A chunk after the checks: the reasons, and the parsed values the model needs.

    ``numbers`` holds each numeric feature as float64 (NaN where it did not
    parse or is missing); ``codes`` each categorical feature as the position of
    its level in the contract (-1: not a level; ``len(levels)``: missing, in a
    nullable column). Both cover every row; the valid rows' values are the
    model's input and the summary's bin counts, so nothing is parsed twice.
    """

    reasons: np.ndarray  # "" for a valid row
    numbers: dict[str, np.ndarray]
    codes: dict[str, np.ndarray]

    @property
    def valid(self) -> np.ndarray:
        return np.asarray(self.reasons == "", dtype=bool)


def level_codes(values: pd.Series, levels: tuple[str, ...]) -> np.ndarray:
    """The position of each value among ``levels`` (-1 when it is none of them).

    One hash lookup per value in Arrow (``index_in``), no Python string per row.
    """
    try:
        array = pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed objects: compare their text
        array = pa.array(values.astype("string"), from_pandas=True)
    if not pa.types.is_string(array.type):
        array = pc.cast(array, pa.string())
    codes = pc.index_in(array, value_set=pa.array(levels, type=pa.string()))
    return np.asarray(codes.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def check(frame: pd.DataFrame, contract: Contract) -> Checked:
    """Check every row of ``frame`` against the contract, in row order.

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
    numbers = {
        numeric.name: _check_number(found, frame[numeric.name], numeric.name, numeric.kind, numeric)
        for numeric in contract.numeric
    }
    codes = {
        categorical.name: _check_level(
            found,
            frame[categorical.name],
            categorical.name,
            categorical.levels,
            nullable=categorical.nullable,
        )
        for categorical in contract.categorical
    }
    levels = contract.levels_by_column
    for rule in contract.implications:
        when = codes[rule.when] == levels[rule.when].index(rule.when_value)
        for name in rule.then:
            then = codes[name] == levels[name].index(rule.then_value)
            broken = when & ~then if rule.one_way else when != then
            blank = (codes[rule.when] == len(levels[rule.when])) | (
                codes[name] == len(levels[name])
            )  # a rule does not apply to a blank
            found.add(broken & ~blank, _constant(f"{name} {rule.requirement}"))
    return Checked(found.result(), numbers, codes)


def reasons(frame: pd.DataFrame, contract: Contract) -> np.ndarray:
    """Why each row of ``frame`` breaks the contract ("" for a valid row), in row order."""
    return check(frame, contract).reasons


def _check_level(
    found: _Reasons, values: pd.Series, name: str, levels: tuple[str, ...], *, nullable: bool
) -> np.ndarray:
    """Level codes; a missing value of a nullable column gets ``len(levels)``, the
    code of the extra level the model (`MISSING_LEVEL`) and the drift profile have."""
    codes = level_codes(values, levels)
    outside = codes < 0
    missing = _missing(values, outside)
    if nullable:
        codes[missing] = len(levels)
    else:
        found.add(missing, lambda _: f"{name} is missing")
    unknown = outside & ~missing
    found.add(unknown, lambda i: f"{name}: {values.iat[i]!r} is not one of its levels")
    return codes


def _check_number(
    found: _Reasons, values: pd.Series, name: str, kind: str, limits: Numeric
) -> np.ndarray:
    """The numbers (NaN where missing: allowed in a nullable column, imputed by the model)."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64").to_numpy(na_value=np.nan)
    missing = _missing(values, np.isnan(numbers))
    if not limits.nullable:
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
    return numbers
