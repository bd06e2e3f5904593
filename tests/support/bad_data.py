"""Bad data for any contract: one case per kind of fault the validate stage must catch.

Every case is derived from the contract (its columns, kinds, ranges, levels,
id pattern, label and cross-field rules), never written for one data set.
A case edits records in the raw (text) format, as a broken export would; it
names the column and the Great Expectations check the report must show
failing, and an offending value the report must quote.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn.core.contract import Categorical, Contract, Numeric
from churn.core.data import clean
from churn.core.domain import Domain

COLUMNS = "expect_table_columns_to_match_set"
ROWS = "expect_table_row_count_to_be_between"
TYPE = "expect_column_values_to_be_in_type_list"
RANGE = "expect_column_values_to_be_between"
LEVELS = "expect_column_values_to_be_in_set"
NOT_NULL = "expect_column_values_to_not_be_null"
UNIQUE = "expect_column_values_to_be_unique"
PATTERN = "expect_column_values_to_match_regex"
TABLE = "(table)"

Edit = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class BadCase:
    """An edit of good raw records and the failure validation must report."""

    name: str
    edit: Edit
    column: str
    expectation: str
    example: object = None  # an offending value the report shows (None: not checked)


def set_cell(column: str, value: str | None, row: int = 0) -> Edit:
    """Write one raw field; ``None`` is an empty field (read as missing)."""

    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = frame[column].mask(frame.index == frame.index[row], value)
        return frame

    return edit


def unknown(known: tuple[str, ...] | set[str], base: str) -> str:
    """``base``, lengthened until it is none of ``known``."""
    value = base
    while value in known:
        value += "_"
    return value


def other_level(levels: tuple[str, ...], than: str) -> str:
    return next(level for level in levels if level != than)


def _number(column: Numeric, value: float) -> tuple[str, float | int]:
    """A raw field for ``value`` and the number validation reads from it."""
    if column.kind == "int":
        return str(int(value)), int(value)
    return repr(float(value)), float(value)


def range_cases(column: Numeric) -> list[BadCase]:
    """A value above and one below the column's range."""
    span = column.max_value - column.min_value
    above_text, above = _number(column, column.max_value + span + 1)
    below_text, below = _number(column, column.min_value - span - 1)
    return [
        BadCase(f"above range: {column.name}", set_cell(column.name, above_text),
                column.name, RANGE, above),
        BadCase(f"below range: {column.name}", set_cell(column.name, below_text),
                column.name, RANGE, below),
    ]  # fmt: skip


def type_cases(column: Numeric, domain: Domain) -> list[BadCase]:
    """Text, a blank the repairs leave missing (unless the column may be blank), and (for
    integers) a fraction."""
    cases = [
        BadCase(f"not a number: {column.name}", set_cell(column.name, "not-a-number"),
                column.name, TYPE, "not-a-number"),
    ]  # fmt: skip
    if not column.nullable:
        cases.append(
            BadCase(f"null: {column.name}", _blank_that_stays_missing(column.name, domain),
                    column.name, NOT_NULL)
        )  # fmt: skip
    if column.kind == "int":
        half = column.min_value + 0.5
        cases.append(
            BadCase(f"not an integer: {column.name}", set_cell(column.name, repr(half)),
                    column.name, TYPE, half)
        )  # fmt: skip
    return cases


def _blank_that_stays_missing(column: str, domain: Domain) -> Edit:
    """Blank the field of the first row whose blank the domain's repairs leave missing."""

    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        for row in range(len(frame)):
            candidate = set_cell(column, None, row)(frame.iloc[[row]].copy())
            if clean(candidate, domain)[column].isna().all():
                return set_cell(column, None, row)(frame)
        raise AssertionError(f"the domain's repairs fill every blank {column}: no null case")

    return edit


def _duplicate_id(contract: Contract) -> Edit:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        return set_cell(contract.id.name, str(frame[contract.id.name].iloc[0]), row=1)(frame)

    return edit


def _one_class(contract: Contract) -> Edit:
    negative = other_level(contract.label.levels, contract.label.positive)

    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame[contract.label.name] = negative
        return frame

    return edit


def malformed_id(contract: Contract) -> str | None:
    """A value the id pattern rejects (GX searches the pattern), if any can be found."""
    candidates = ("not an id!", "?", "0", "a", "A-0", "\u00e9")
    return next((c for c in candidates if re.search(contract.id.pattern, c) is None), None)


def rule_cases(contract: Contract) -> list[BadCase]:
    """Each cross-field rule broken every way it can be, on the first column it governs:
    forwards (the condition without the level), and for a both-ways rule backwards
    too (the level without the condition)."""
    cases = []
    levels = contract.levels_by_column
    for rule in contract.implications:
        column = rule.then[0]
        wrong = other_level(levels[column], rule.then_value)
        cases.append(
            BadCase(
                f"rule: {rule.when} is {rule.when_value!r}, {column} is not {rule.then_value!r}",
                # every governed column as the rule wants it, but one
                _rule_edit(
                    rule.when,
                    rule.when_value,
                    then={**dict.fromkeys(rule.then, rule.then_value), column: wrong},
                ),
                column,
                LEVELS,
                wrong,
            )
        )
        if not rule.one_way:
            other = other_level(levels[rule.when], rule.when_value)
            name = f"rule: {rule.when} is not {rule.when_value!r}, {column} is {rule.then_value!r}"
            cases.append(
                BadCase(
                    name,
                    _rule_edit(rule.when, other, then={column: rule.then_value}),
                    column,
                    LEVELS,
                    rule.then_value,
                )
            )
    return cases


def _rule_edit(when: str, when_value: str, *, then: dict[str, str]) -> Edit:
    """Row 0: ``when`` := ``when_value``, then each column of ``then`` := its value, in order."""

    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame = set_cell(when, when_value)(frame)
        for name, value in then.items():
            frame = set_cell(name, value)(frame)
        return frame

    return edit


def bad_cases(domain: Domain) -> list[BadCase]:
    """Every kind of bad data, for the domain's contract."""
    contract = domain.contract
    ident, label = contract.id.name, contract.label.name
    dropped = contract.feature_names[-1]
    extra = unknown(set(contract.all_columns), "unexpected_column")
    cases = [
        BadCase(f"missing column: {dropped}", lambda f: f.drop(columns=[dropped]), TABLE, COLUMNS),
        BadCase("extra column", lambda f: f.assign(**{extra: "x"}), TABLE, COLUMNS),
        BadCase("header only", lambda f: f.iloc[:0], TABLE, ROWS),
        BadCase("null id", set_cell(ident, None), ident, NOT_NULL),
        BadCase("duplicate id", _duplicate_id(contract), ident, UNIQUE),
        BadCase("null label", set_cell(label, None), label, NOT_NULL),
        BadCase("unknown label", set_cell(label, bad := unknown(contract.label.levels, "maybe")),
                label, LEVELS, bad),
        BadCase("single-class label", _one_class(contract), label, LEVELS),
    ]  # fmt: skip
    if (malformed := malformed_id(contract)) is not None:
        cases.append(BadCase("malformed id", set_cell(ident, malformed), ident, PATTERN, malformed))
    # Every numeric column's range; the kinds of type fault on one column of each kind.
    for numeric in contract.numeric:
        cases += range_cases(numeric)
    for kind in ("int", "float"):
        of_kind = [n for n in contract.numeric if n.kind == kind]
        # The null case needs a column that may not be blank: put one first.
        of_kind.sort(key=lambda n: n.nullable)
        cases += type_cases(of_kind[0], domain) if of_kind else []
    # The level checks come from one loop: the first and the last column stand for all.
    if contract.categorical:
        ends = {c.name: c for c in (contract.categorical[0], contract.categorical[-1])}
        for categorical in ends.values():
            level = unknown(categorical.levels, "not-a-level")
            cases.append(
                BadCase(f"unknown level: {categorical.name}", set_cell(categorical.name, level),
                        categorical.name, LEVELS, level)
            )  # fmt: skip
        strict = [c.name for c in contract.categorical if not c.nullable]
        if strict:
            cases.append(
                BadCase(f"null: {strict[0]}", set_cell(strict[0], None), strict[0], NOT_NULL)
            )
    cases += missing_cases(contract)
    cases += rule_cases(contract)
    return cases


def nullable_columns(contract: Contract) -> list[Numeric | Categorical]:
    """The feature columns the contract lets be blank (``max_missing`` > 0)."""
    columns: list[Numeric | Categorical] = [*contract.numeric, *contract.categorical]
    return [c for c in columns if c.nullable]


def blank_share(column: str, share: float) -> Edit:
    """Blank the first filled cells of ``column`` until ``share`` of its rows are blank
    (at least one row)."""

    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        filled = np.flatnonzero(frame[column].notna().to_numpy())
        wanted = max(1, math.ceil(len(frame) * share)) - (len(frame) - len(filled))
        blank = np.zeros(len(frame), dtype=bool)
        blank[filled[: max(wanted, 0)]] = True
        frame[column] = frame[column].mask(blank, None)
        return frame

    return edit


def missing_cases(contract: Contract) -> list[BadCase]:
    """Each nullable column blank in more rows than its ``max_missing`` allows."""
    return [
        BadCase(f"too many blanks: {c.name}", blank_share(c.name, min(1.0, 2 * c.max_missing)),
                c.name, NOT_NULL)
        for c in nullable_columns(contract)
    ]  # fmt: skip
