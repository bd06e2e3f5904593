"""Reading a table someone brings and deciding, column by column, what the contract says.

Every decision is a rule written here and repeated in the drafted file's
comments, so a person can see why and override it there:

- a column that is blank everywhere, holds one value, or is text with more
  than ``max_levels`` distinct values (an id, free text) is left out;
- a column whose filled cells all read as numbers is numeric: ``int`` when
  every value is whole, else ``float``; its valid range is the observed one
  widened by ``margin`` of its span on each side (never below 0 for a column
  that has no negative value);
- a whole-number column with only two values (a 0/1 flag) is categorical;
- other text is categorical with its observed levels, in sorted order;
- a column with blanks may be missing, up to ``missing_slack`` times the
  share observed (rounded up to a percent);
- the label has exactly two values and no blank; its positive-rate band runs
  from half the observed rate to halfway between it and 1.

`AdoptError` names the first problem that makes the table unusable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd

from churn.core.contract import api_name
from churn.core.data import read_csv
from churn.core.errors import DataError
from churn.core.repairs import tidy

MIN_ROWS = 200
BLANK_TOKENS = ("?", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None")
"""Cells that mean "no value" in many extracts; those a table uses become blanks (repairs.py)."""
RESERVED_API_NAMES = ("request_id", "outcome", "observed_at", "received_at", "status")
"""JSON field names the service's feedback body uses; a column may not take one."""


class AdoptError(Exception):
    """The table (or what was asked of it) cannot become a contract; one line says why."""


@dataclass(frozen=True)
class Options:
    max_levels: int = 50
    margin: float = 0.10
    missing_slack: float = 1.5


@dataclass(frozen=True)
class Column:
    """One feature column as the contract will state it."""

    name: str
    kind: Literal["int", "float", "categorical"]
    levels: tuple[str, ...] = ()
    min_value: float = 0.0
    max_value: float = 0.0
    observed: tuple[float, float] = (0.0, 0.0)
    missing_share: float = 0.0
    max_missing: float = 0.0
    distinct: int = 0
    note: str = ""


@dataclass(frozen=True)
class Dropped:
    name: str
    reason: str


@dataclass(frozen=True)
class Identifier:
    name: str
    pattern: str
    generated: bool  # the table has no id: adopt numbers its rows


@dataclass(frozen=True)
class Label:
    name: str
    negative: str
    positive: str
    rate: float
    band: tuple[float, float]


@dataclass(frozen=True)
class Profile:
    """What `profile` decided about a table, and the table as the pipeline will read it."""

    source: Path
    rows: int
    id: Identifier
    label: Label
    columns: tuple[Column, ...]
    dropped: tuple[Dropped, ...]
    blanks: tuple[str, ...]
    example: dict[str, str | int | float]
    table: pd.DataFrame = field(repr=False)  # the raw table (text), id column first

    @property
    def numeric(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.kind != "categorical")

    @property
    def categorical(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.kind == "categorical")


def profile(
    path: Path,
    *,
    label: str,
    positive: str,
    id_column: str | None = None,
    options: Options | None = None,
) -> Profile:
    """Read ``path`` and decide its contract; `AdoptError` if it cannot have one."""
    options = options or Options()
    try:
        raw = read_csv(path)
    except DataError as exc:
        raise AdoptError(str(exc)) from None
    if list(raw.columns) != list(dict.fromkeys(raw.columns)) or any(
        re.fullmatch(r"Unnamed: \d+", str(c)) for c in raw.columns
    ):
        raise AdoptError(f"{path}: the header row has blank or repeated column names")
    stripped = tidy(raw)
    blanks = tuple(t for t in BLANK_TOKENS if stripped.isin([t]).any().any())
    table = tidy(stripped, blanks=blanks)
    if len(table) < MIN_ROWS:
        raise AdoptError(f"{path}: {len(table)} rows; a model needs at least {MIN_ROWS}")
    chosen = _label(table, label, positive, path)
    ident = _identifier(table, id_column, path, label)
    columns: list[Column] = []
    dropped: list[Dropped] = []
    for name in table.columns:
        if name in (label, ident.name):
            continue
        decided = _column(name, table[name], options)
        if isinstance(decided, Dropped):
            dropped.append(decided)
        else:
            columns.append(decided)
    if not columns:
        raise AdoptError(f"{path}: no feature columns left besides the label and the id")
    _api_names_unique([ident.name, *(c.name for c in columns), label], path)
    out = raw.copy()
    if ident.generated:
        width = max(6, len(str(len(out))))
        out.insert(0, ident.name, [f"{i:0{width}d}" for i in range(1, len(out) + 1)])
    example = _example(out, table, ident.name, columns, path)
    return Profile(
        source=path,
        rows=len(table),
        id=ident,
        label=chosen,
        columns=tuple(columns),
        dropped=tuple(dropped),
        blanks=blanks,
        example=example,
        table=out,
    )


def _label(table: pd.DataFrame, name: str, positive: str, path: Path) -> Label:
    if name not in table.columns:
        raise AdoptError(f"{path}: no column named {name!r} (the label)")
    values = table[name]
    if values.isna().any():
        raise AdoptError(
            f"{path}: the label {name} is blank in {int(values.isna().sum())} rows; "
            "every training row needs one"
        )
    levels = sorted(values.unique())
    if positive not in levels:
        shown = ", ".join(map(repr, levels[:5]))
        raise AdoptError(f"{path}: {positive!r} is not a value of {name} (it has {shown})")
    if len(levels) != 2:
        raise AdoptError(
            f"{path}: the label {name} has {len(levels)} values; this template predicts "
            "a binary label (two values)"
        )
    rate = float(values.eq(positive).mean())
    low = math.floor(rate / 2 * 1000) / 1000
    high = math.ceil((1 + rate) / 2 * 1000) / 1000
    negative = next(level for level in levels if level != positive)
    return Label(name, negative, positive, rate, (max(low, 0.001), min(high, 1.0)))


def generated_id_name(source: Path, taken: set[str]) -> str:
    """The column that numbers a table without an id: ``<file stem>_id``, made unique."""
    stem = re.sub(r"[^0-9a-zA-Z]+", "_", source.stem).strip("_").lower() or "table"
    name = f"{stem}_id"
    while name in taken or api_name(name) in RESERVED_API_NAMES:
        name = f"{name}_"
    return name


GENERATED_ID_PATTERN = "^[A-Za-z0-9_.:-]{1,64}$"
"""Ids of a table that had none: the pipeline numbers its rows; in production the caller
sends its own ids, in this format."""


def _identifier(table: pd.DataFrame, name: str | None, path: Path, label: str) -> Identifier:
    if name is None:
        return Identifier(generated_id_name(path, set(table.columns)), GENERATED_ID_PATTERN, True)
    if name not in table.columns:
        raise AdoptError(f"{path}: no column named {name!r} (the id)")
    if name == label:
        raise AdoptError(f"{path}: {name} cannot be both the label and the id")
    values = table[name]
    if values.isna().any():
        raise AdoptError(f"{path}: the id {name} is blank in {int(values.isna().sum())} rows")
    repeated = values[values.duplicated()]
    if len(repeated):
        raise AdoptError(
            f"{path}: the id {name} repeats ({len(repeated)} duplicates, "
            f"e.g. {repeated.iloc[0]!r}); an id names one row"
        )
    if api_name(name) in RESERVED_API_NAMES:
        raise AdoptError(f"{path}: the id {name}'s API name is one the service reserves")
    if not all(v.isascii() and v.isprintable() for v in values):
        raise AdoptError(f"{path}: the id {name} has non-ASCII or unprintable characters")
    return Identifier(name, id_pattern(values), False)


def id_pattern(values: pd.Series) -> str:
    """A pattern that every one of ``values`` matches: the character classes they use
    (digits, upper and lower case letters, each other character by itself), their lengths."""
    chars = set("".join(values))
    parts = []
    for lo, hi in (("0", "9"), ("A", "Z"), ("a", "z")):
        if any(lo <= c <= hi for c in chars):
            parts.append(f"{lo}-{hi}")
    other = sorted(c for c in chars if not c.isalnum())
    parts += [re.escape(c) if c not in "-" else r"\-" for c in other]
    lengths = values.str.len()
    low, high = int(lengths.min()), int(lengths.max())
    count = f"{{{low}}}" if low == high else f"{{{low},{high}}}"
    return f"^[{''.join(parts)}]{count}$"


def _column(  # noqa: PLR0911 (one return per decision, in the order the docstring lists)
    name: str, values: pd.Series, options: Options
) -> Column | Dropped:
    filled = values.dropna()
    missing = 1 - len(filled) / len(values) if len(values) else 0.0
    if filled.empty:
        return Dropped(name, "blank in every row")
    distinct = filled.nunique()
    if distinct == 1:
        return Dropped(name, f"one value only ({filled.iloc[0]!r}): it tells the model nothing")
    max_missing = _max_missing(missing, options)
    numbers = pd.to_numeric(filled, errors="coerce")
    if numbers.notna().all():
        whole = bool((numbers % 1 == 0).all()) and not filled.str.contains(r"[.eE]").any()
        if whole and distinct == 2:
            levels = tuple(sorted(filled.unique(), key=float))
            return Column(
                name, "categorical", levels=levels, missing_share=missing,
                max_missing=max_missing, distinct=distinct,
                note="whole numbers with two values: a flag",
            )  # fmt: skip
        low, high = float(numbers.min()), float(numbers.max())
        kind: Literal["int", "float"] = "int" if whole else "float"
        min_value, max_value = _widened(low, high, kind, options.margin)
        note = (
            f"whole numbers with {distinct} values: codes? then make it categorical"
            if whole and distinct <= 10
            else ""
        )
        return Column(
            name, kind, min_value=min_value, max_value=max_value, observed=(low, high),
            missing_share=missing, max_missing=max_missing, distinct=distinct, note=note,
        )  # fmt: skip
    decorated = pd.to_numeric(filled.str.replace(r"[,$€£%\s]", "", regex=True), errors="coerce")
    if decorated.notna().all():
        return Dropped(
            name,
            "numbers written with separators or units (e.g. "
            f"{filled.iloc[0]!r}): strip them in repairs.py, then describe it as numeric",
        )
    if distinct > options.max_levels:
        return Dropped(
            name,
            f"text with {distinct} distinct values (more than {options.max_levels}): "
            "an id or free text?",
        )
    if not all(v.isprintable() for v in filled.unique()):
        return Dropped(name, "text with unprintable characters")
    counts = filled.value_counts()
    rare = [str(level) for level, n in counts.items() if n < 10]
    note = f"rare levels (fewer than 10 rows): {', '.join(sorted(rare))}" if rare else ""
    return Column(
        name, "categorical", levels=tuple(sorted(filled.unique())), missing_share=missing,
        max_missing=max_missing, distinct=distinct, note=note,
    )  # fmt: skip


def _max_missing(share: float, options: Options) -> float:
    if share == 0:
        return 0.0
    return min(0.99, math.ceil(share * options.missing_slack * 100) / 100)


def _widened(low: float, high: float, kind: str, margin: float) -> tuple[float, float]:
    """``low..high`` widened by ``margin`` of its span each side, never below 0 for a column
    without negative values; whole numbers for ints, else rounded outwards to a step that
    is a power of ten about a thousandth of the span."""
    span = high - low
    lo, hi = low - margin * span, high + margin * span
    if low >= 0:
        lo = max(lo, 0.0)
    if kind == "int":
        return float(math.floor(lo)), float(math.ceil(hi))
    step = 10.0 ** math.floor(math.log10(span / 1000)) if span > 0 else 1.0
    return _rounded(math.floor(lo / step) * step, step), _rounded(math.ceil(hi / step) * step, step)


def _rounded(value: float, step: float) -> float:
    digits = max(0, -math.floor(math.log10(step)))
    return round(value, digits)


def _api_names_unique(names: list[str], path: Path) -> None:
    seen: dict[str, str] = {}
    for name in names:
        key = api_name(name)
        if key in seen:
            raise AdoptError(
                f"{path}: columns {seen[key]!r} and {name!r} share the API name {key!r}; rename one"
            )
        seen[key] = name


def _example(
    raw: pd.DataFrame, table: pd.DataFrame, id_name: str, columns: list[Column], path: Path
) -> dict[str, str | int | float]:
    """The first row with every feature filled, typed as the contract reads it, in the
    contract's order (the id, the numeric features, the categorical ones)."""
    columns = sorted(columns, key=lambda c: c.kind == "categorical")
    names = [c.name for c in columns]
    complete = table[names].notna().all(axis=1).to_numpy()
    if not complete.any():
        raise AdoptError(f"{path}: no row has every feature filled (needed for the API's example)")
    row = int(complete.argmax())
    example: dict[str, str | int | float] = {id_name: str(raw[id_name].iloc[row]).strip()}
    for column in columns:
        text = str(table[column.name].iloc[row])
        if column.kind == "int":
            example[column.name] = int(float(text))
        elif column.kind == "float":
            example[column.name] = float(text)
        else:
            example[column.name] = text
    return example
