"""Synthetic records for any data contract: valid, reproducible, and worth modelling.

`generate(contract, rows, seed)` draws a labelled table from the contract
alone, so benchmarks can scale any domain to a million rows and the test
suite can drive the whole path on a domain that has no real data. No stage
of dvc.yaml uses it, so it lives beside the stages rather than in their
dependencies (`core/`):

- **ids** follow the contract's pattern by construction (`id_pattern_ids`):
  the pattern is read as a sequence of character sets, and row ``i`` is
  written in the mixed radix those sets give, so ids are unique and match;
- **numbers** come from a Beta distribution stretched over the column's
  range: whole numbers for ``int`` columns, cents for ``float`` ones;
- **levels** are drawn with fixed shares; a level that a both-ways
  cross-field rule reserves (its ``then_value``) is never drawn but set by
  the rule, so the rule holds in both directions. A one-way rule's level is
  drawn like any other and also set where the rule's condition holds, so
  the data has records with that level and without the condition too;
- **the label** follows a logistic model with fixed weights on the
  standardised numbers and the levels (a one-hot logistic regression, which
  is what the default pipeline fits): ``y = 1`` for the ``k`` rows whose
  logit plus standard logistic noise is highest, so ``P(y = 1)`` is
  ``sigmoid(logit - t)`` and exactly ``k`` rows, the middle of the
  contract's ``positive_rate`` range, are positive;
- **blanks**: in a column the contract lets be missing, half its
  ``max_missing`` share of cells is blanked after the label is drawn (the
  label follows the full record, as in life), from a random stream of its
  own, so the other cells are those of a contract without blanks.

Shapes, shares and weights are the contract's `Population`, drawn from a
fixed seed: every ``seed`` samples the same population, so two files differ
by sampling noise only (a drift check between them finds nothing).

The frame has every contract column in contract order: ids and levels as
text, numbers typed. Written with ``to_csv`` it is a raw file that the
domain's repairs leave alone and validation passes. Everything is
vectorised: a million rows take a few seconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt
import pandas as pd

from churn.core.contract import Contract, Numeric
from churn.core.errors import ContractError

# Standard deviation of the label's logit. The ROC AUC of the true
# probabilities (the best a model can reach) is about 0.74 at 1.0, 0.87 at
# 2.0 and 0.92 at 3.0; the default model gets within 0.01-0.02 of it.
LOGIT_SCALE = 2.0
# Shape parameters of each numeric column's Beta distribution are drawn in
# this range: skewed either way or hump-shaped, never U-shaped.
BETA_SHAPE = (1.2, 4.0)
# Dirichlet concentration of each column's level shares: no level is rare.
LEVEL_CONCENTRATION = 4.0
# A repetition without an upper bound (``+``, ``*``, ``{2,}``) grows at most
# this far beyond its minimum to make room for more ids.
MAX_EXTRA_REPEATS = 64
# The population's own seed, and the records it measures its moments on.
POPULATION_SEED = 20261127
CALIBRATION_ROWS = 20_000
# Generated ids checked against the pattern with `re` (a guard on the parser).
IDS_CHECKED = 1000
# Share of a nullable column's ``max_missing`` that is blanked, and the random
# stream (beside ``seed``) that picks the cells.
BLANK_SHARE = 0.5
BLANK_STREAM = 1

Codes = npt.NDArray[np.int64]


def generate(contract: Contract, rows: int, seed: int, *, first_id: int = 0) -> pd.DataFrame:
    """``rows`` valid, labelled records of ``contract``, the same for the same ``seed``.

    Every seed samples the same `population`. ``first_id`` is the position
    of the first id in the pattern's sequence: files generated with disjoint
    ranges (0 and ``rows``, say) can be read together without repeating an
    id. Raises `ContractError` when the id pattern, a range or a rule cannot
    be satisfied by this construction.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    model = population(contract)
    rng = np.random.default_rng(seed)
    numbers, codes = _features(contract, model, rows, rng)
    positive = _label(contract, model, numbers, codes, rng)
    label = contract.label
    label_codes = np.where(
        positive, label.levels.index(label.positive), _other_level(label.levels, label.positive)
    )
    columns: dict[str, object] = {
        contract.id.name: id_pattern_ids(contract.id.pattern, rows, first_id)
    }
    blanks = np.random.default_rng([seed, BLANK_STREAM])
    for number in contract.numeric:
        values = numbers[number.name]
        typed: pd.Series = pd.Series(values.astype(np.int64) if number.kind == "int" else values)
        if number.nullable:  # ints as pandas' nullable Int64, so a blank is NA, not a float
            typed = typed.astype("Int64" if number.kind == "int" else "float64")
            typed = typed.mask(_blanked(number.max_missing, rows, blanks))
        columns[number.name] = typed
    for column in contract.categorical:
        text = _text(column.levels, codes[column.name])
        if column.nullable:
            text = text.mask(_blanked(column.max_missing, rows, blanks))
        columns[column.name] = text
    columns[label.name] = _text(label.levels, label_codes)
    return pd.DataFrame(columns, index=pd.RangeIndex(rows))[list(contract.all_columns)]


def _blanked(max_missing: float, rows: int, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """Which of ``rows`` cells to blank: exactly `BLANK_SHARE` of ``max_missing`` of them."""
    blank = np.zeros(rows, dtype=bool)
    blank[rng.permutation(rows)[: round(rows * max_missing * BLANK_SHARE)]] = True
    return blank


# -- Ids: a pattern read as a sequence of character sets -------------------------

DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
WORD = DIGITS + UPPER + UPPER.lower() + "_"
# What ``.`` stands for: any of these matches it.
ANY = DIGITS + UPPER
ESCAPES = {"d": DIGITS, "w": WORD}
UNSUPPORTED = "lookarounds, backreferences, flags, negated classes and escapes like \\b or \\D"


@dataclass
class _Slot:
    """One place in the pattern: a set of characters repeated ``low`` to ``high`` times."""

    chars: str
    low: int
    high: int | None
    count: int = 0


def id_pattern_ids(pattern: str, rows: int, first: int = 0) -> pd.Series:
    """Ids ``first .. first + rows - 1`` written in ``pattern``'s own alphabet.

    The pattern is read as literals, character classes (``[A-Z0-9]``, ``\\d``,
    ``\\w``, ``.``), repetitions (``{n}``, ``{n,m}``, ``?``, ``*``, ``+``) and
    groups; of alternatives (``a|b``) the first is used. Each id is one path
    through the pattern, so it matches by construction; repetitions grow (up
    to their maximum) until there are enough distinct ids. Raises
    `ContractError` for what this reading does not support, or when the
    pattern has fewer distinct ids than needed.
    """
    slots = _parse(pattern)
    needed = first + rows
    _grow(slots, needed, pattern)
    places = [slot.chars for slot in slots for _ in range(slot.count)]
    index = np.arange(first, needed, dtype=np.int64)
    matrix = np.empty((rows, len(places)), dtype=np.uint8)
    for place in range(len(places) - 1, -1, -1):  # the last place turns fastest
        alphabet = np.frombuffer(places[place].encode("ascii"), dtype=np.uint8)
        matrix[:, place] = alphabet[index % len(alphabet)]
        index //= len(alphabet)
    ids = (
        matrix.view(f"S{len(places)}").ravel().astype(str)
        if places
        else np.full(rows, "", dtype=str)
    )
    _check_ids(pattern, ids)
    return pd.Series(pd.array(ids, dtype="str"))


def _grow(slots: list[_Slot], needed: int, pattern: str) -> None:
    """Set each slot's count: its minimum, then more where that adds room for ids."""
    for slot in slots:
        slot.count = slot.low

    def room() -> float:
        return sum(slot.count * math.log(len(slot.chars)) for slot in slots)

    target = math.log(max(needed, 1))
    while room() < target - 1e-9:
        growable = [
            s
            for s in slots
            if len(s.chars) > 1
            and s.count < (s.low + MAX_EXTRA_REPEATS if s.high is None else s.high)
        ]
        if not growable:
            capacity = math.exp(room())
            raise ContractError(
                f"id pattern {pattern!r}: it allows about {capacity:,.0f} distinct ids "
                f"as generated, fewer than the {needed:,} needed"
            )
        max(growable, key=lambda s: len(s.chars)).count += 1


def _check_ids(pattern: str, ids: npt.NDArray[np.str_]) -> None:
    compiled = re.compile(pattern)
    step = max(1, len(ids) // IDS_CHECKED)
    for value in (*ids[::step], *ids[-1:]):
        if compiled.fullmatch(str(value)) is None:  # a bug in `_parse`, not in the contract
            raise ContractError(
                f"id pattern {pattern!r}: generated {value!r}, which does not match"
            )


class _Reader:
    """A recursive-descent reader of the regular-expression subset `id_pattern_ids` takes."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.at = 0

    def fail(self, what: str) -> ContractError:
        return ContractError(
            f"id pattern {self.pattern!r}: cannot generate ids for it ({what} at position "
            f"{self.at}); write it with literals, [classes], \\d, {{counts}} and groups "
            f"(not {UNSUPPORTED})"
        )

    def peek(self) -> str:
        return self.pattern[self.at] if self.at < len(self.pattern) else ""

    def take(self) -> str:
        char = self.peek()
        self.at += 1
        return char

    def alternatives(self, depth: int) -> list[_Slot]:
        """A sequence, or the first of several separated by ``|``."""
        first = self.sequence(depth)
        while self.peek() == "|":
            self.take()
            self.sequence(depth)  # read (and so checked), not used
        return first

    def sequence(self, depth: int) -> list[_Slot]:
        slots: list[_Slot] = []
        while self.peek() not in ("", "|", ")"):
            if self.peek() in "^$":
                first, last = self.at == 0, self.at == len(self.pattern) - 1
                if not (first if self.peek() == "^" else last):
                    raise self.fail(f"an anchor {self.peek()!r} inside the pattern")
                self.take()
                continue
            atom = self.atom(depth)
            low, high = self.repetition()
            if len(atom) == 1 and atom[0].low == atom[0].high == 1:
                slots.append(_Slot(atom[0].chars, low, high))
            else:  # a group: its slots, ``low`` times (each may still grow)
                slots += [_Slot(s.chars, s.low, s.high) for _ in range(low) for s in atom]
        return slots

    def atom(self, depth: int) -> list[_Slot]:
        char = self.take()
        if char == "(":
            if self.pattern.startswith("?:", self.at):
                self.at += 2
            elif self.peek() == "?":
                raise self.fail("a special group")
            inner = self.alternatives(depth + 1)
            if self.take() != ")":
                raise self.fail("a group that is not closed")
            return inner
        if char == "[":
            return [_Slot(self.char_class(), 1, 1)]
        if char == "\\":
            return [_Slot(self.escape(), 1, 1)]
        if char == ".":
            return [_Slot(ANY, 1, 1)]
        if char in "*+?{":
            raise self.fail(f"a repetition {char!r} with nothing to repeat")
        return [_Slot(char, 1, 1)]

    def escape(self) -> str:
        char = self.take()
        if char in ESCAPES:
            return ESCAPES[char]
        if char and not char.isalnum():
            return char  # an escaped literal: \. \- \\ ...
        raise self.fail(f"the escape \\{char}")

    def char_class(self) -> str:
        if self.peek() == "^":
            raise self.fail("a negated class")
        chars: list[str] = []
        while True:
            char = self.take()
            if char == "":
                raise self.fail("a class that is not closed")
            if char == "]" and chars:
                break
            if char == "[" and self.peek() == ":":
                raise self.fail("a POSIX class")
            text = self.escape() if char == "\\" else char
            if (
                len(text) == 1
                and self.peek() == "-"
                and self.pattern[self.at + 1 : self.at + 2] not in ("]", "")
            ):
                self.take()
                end = self.take()
                end = self.escape() if end == "\\" else end
                if len(end) != 1 or ord(end) < ord(text):
                    raise self.fail(f"a bad range {text}-{end}")
                text = "".join(chr(c) for c in range(ord(text), ord(end) + 1))
            chars += [c for c in text if c not in chars]
        if not all(c.isascii() and c.isprintable() for c in chars):
            raise self.fail("a class with non-printable or non-ASCII characters")
        return "".join(chars)

    def repetition(self) -> tuple[int, int | None]:
        char = self.peek()
        bounds: tuple[int, int | None]
        if char == "?":
            bounds = (0, 1)
        elif char == "*":
            bounds = (0, None)
        elif char == "+":
            bounds = (1, None)
        elif char == "{":
            match = re.compile(r"\{([0-9]*)(,?)([0-9]*)\}").match(self.pattern, self.at)
            if match is None or not (match[1] or match[3]):
                raise self.fail("a bad count")
            low = int(match[1] or 0)
            high = int(match[3]) if match[3] else (None if match[2] else low)
            if high is not None and high < low:
                raise self.fail("a count whose maximum is below its minimum")
            self.at = match.end() - 1
            bounds = (low, high)
        else:
            return 1, 1
        self.take()
        if self.peek() in ("?", "+"):  # lazy or possessive: the same strings
            self.take()
        return bounds


def _parse(pattern: str) -> list[_Slot]:
    reader = _Reader(pattern)
    slots = reader.alternatives(0)
    if reader.peek() != "":
        raise reader.fail(f"an unexpected {reader.peek()!r}")
    if any(not slot.chars for slot in slots):
        raise reader.fail("an empty class")
    return slots


# -- The population: what every sample of a contract shares ----------------------------


@dataclass(frozen=True)
class Population:
    """The distribution a contract's records are drawn from, whatever the seed.

    Drawn once from `POPULATION_SEED` in contract order, so two samples of
    the same contract (seeds 0 and 1, a reference and a current window)
    come from the same population and differ only by sampling noise.
    """

    beta: dict[str, tuple[float, float]]  # numeric column -> Beta shape (a, b)
    shares: dict[str, npt.NDArray[np.float64]]  # categorical column -> share of each level
    numeric_weight: dict[str, float]  # per standardised numeric column
    level_weight: dict[str, npt.NDArray[np.float64]]  # per level of each categorical column
    center: dict[str, tuple[float, float]]  # numeric column -> (mean, std) in the population
    logit: tuple[float, float] = (0.0, 1.0)  # the raw logit's (mean, std) in the population


def population(contract: Contract) -> Population:
    """The contract's population: shapes, shares and label weights, then its moments.

    The means and spreads that standardise the numbers and the logit are
    measured on `CALIBRATION_ROWS` records of the population itself, so they
    do not change with the sample.
    """
    rng = np.random.default_rng(POPULATION_SEED)
    reserved = _reserved(contract)
    shares = {}
    for column in contract.categorical:
        drawable = [level for level in column.levels if level not in reserved.get(column.name, ())]
        if not drawable:
            raise ContractError(f"{column.name}: every level is set by a rule; nothing to draw")
        drawn = iter(rng.dirichlet(np.full(len(drawable), LEVEL_CONCENTRATION)))
        shares[column.name] = np.array(
            [next(drawn) if lv in drawable else 0.0 for lv in column.levels]
        )
    draft = Population(
        beta={
            c.name: (float(rng.uniform(*BETA_SHAPE)), float(rng.uniform(*BETA_SHAPE)))
            for c in contract.numeric
        },
        shares=shares,
        numeric_weight={c.name: float(rng.normal()) for c in contract.numeric},
        level_weight={c.name: rng.normal(size=len(c.levels)) for c in contract.categorical},
        center={},
    )
    numbers, codes = _features(contract, draft, CALIBRATION_ROWS, rng)
    center = {name: (float(x.mean()), float(x.std())) for name, x in numbers.items()}
    draft = replace(draft, center=center)
    logit = _logit(contract, draft, numbers, codes)
    return replace(draft, logit=(float(logit.mean()), float(logit.std())))


def _reserved(contract: Contract) -> dict[str, set[str]]:
    """Per column, the levels only a (both-ways) cross-field rule may set."""
    reserved: dict[str, set[str]] = {}
    for rule in contract.implications:
        if rule.one_way:  # its level may appear without its condition
            continue
        for column in rule.then:
            reserved.setdefault(column, set()).add(rule.then_value)
    return reserved


# -- Features ---------------------------------------------------------------------


def _features(
    contract: Contract, model: Population, rows: int, rng: np.random.Generator
) -> tuple[dict[str, npt.NDArray[np.float64]], dict[str, Codes]]:
    """Numbers (as float64; ints are whole) and level codes of ``rows`` records."""
    numbers = {c.name: _numbers(c, model.beta[c.name], rows, rng) for c in contract.numeric}
    codes = {
        c.name: rng.choice(len(c.levels), size=rows, p=model.shares[c.name])
        for c in contract.categorical
    }
    _apply_rules(contract, codes)
    return numbers, codes


def _numbers(
    column: Numeric, shape: tuple[float, float], rows: int, rng: np.random.Generator
) -> npt.NDArray[np.float64]:
    """Values in the column's range: whole numbers for ``int``, cents for ``float``."""
    share = rng.beta(*shape, size=rows)
    if column.kind == "int":
        low, high = math.ceil(column.min_value), math.floor(column.max_value)
        if low > high:
            raise ContractError(
                f"{column.name}: no integer between {column.min_value:g} and {column.max_value:g}"
            )
        whole: npt.NDArray[np.float64] = np.minimum(low + np.floor(share * (high - low + 1)), high)
        return whole
    spread = column.min_value + share * (column.max_value - column.min_value)
    # Whole cents inside the range (rounding must not step over a bound).
    cents = math.ceil(column.min_value * 100) / 100, math.floor(column.max_value * 100) / 100
    if cents[0] > cents[1]:  # a range narrower than a cent: keep full precision
        return spread
    rounded: npt.NDArray[np.float64] = np.clip(spread.round(2), *cents)
    return rounded


def _apply_rules(contract: Contract, codes: dict[str, Codes]) -> None:
    """Set each rule's level where its condition holds; refuse rules that cannot all hold.

    Reserved levels are never drawn, so a both-ways rule's level appears
    exactly where its condition holds; a one-way rule's level is drawn too.
    A rule may set the level another one looks at: they are applied until
    nothing moves.
    """
    levels = contract.levels_by_column
    for _ in range(len(contract.implications) + 1):
        changed = False
        for rule in contract.implications:
            when = codes[rule.when] == levels[rule.when].index(rule.when_value)
            for column in rule.then:
                value = levels[column].index(rule.then_value)
                changed |= bool(np.any(codes[column][when] != value))
                codes[column][when] = value
        if not changed:
            break
    for rule in contract.implications:
        when = codes[rule.when] == levels[rule.when].index(rule.when_value)
        for column in rule.then:
            holds = codes[column] == levels[column].index(rule.then_value)
            if np.any(when & ~holds if rule.one_way else when != holds):
                raise ContractError(
                    f"rule {rule.when}={rule.when_value!r} -> {column}={rule.then_value!r}: "
                    "cannot be satisfied together with the other rules by drawing levels"
                )


# -- The label --------------------------------------------------------------------


def _logit(
    contract: Contract,
    model: Population,
    numbers: dict[str, npt.NDArray[np.float64]],
    codes: dict[str, Codes],
) -> npt.NDArray[np.float64]:
    """The label's raw log-odds: weights on standardised numbers and on levels."""
    rows = len(next(iter(codes.values()))) if codes else len(next(iter(numbers.values())))
    logit = np.zeros(rows)
    for name, x in numbers.items():
        mean, std = model.center.get(name, (0.0, 0.0))
        if std > 0:
            logit += model.numeric_weight[name] * (x - mean) / std
    for column in contract.categorical:
        logit += model.level_weight[column.name][codes[column.name]]
    return logit


def _label(
    contract: Contract,
    model: Population,
    numbers: dict[str, npt.NDArray[np.float64]],
    codes: dict[str, Codes],
    rng: np.random.Generator,
) -> npt.NDArray[np.bool_]:
    """Which rows are positive: the population's logistic model, exactly ``k`` positives."""
    mean, std = model.logit
    logit = _logit(contract, model, numbers, codes)
    logit = (logit - mean) / std * LOGIT_SCALE if std > 0 else np.zeros_like(logit)
    # Standard logistic noise: P(logit + noise > t) = sigmoid(logit - t).
    uniform = rng.uniform(np.finfo(np.float64).tiny, 1.0, size=len(logit))
    score = logit + np.log(uniform) - np.log1p(-uniform)
    k = _positives(contract, len(logit))
    positive = np.zeros(len(logit), dtype=bool)
    if k:
        positive[np.argpartition(-score, k - 1)[:k]] = True
    return positive


def _positives(contract: Contract, rows: int) -> int:
    """The number of positives: the middle of the contract's rate range, kept inside it."""
    low, high = contract.label.positive_rate
    k = round(rows * (low + high) / 2)
    return int(min(max(k, math.ceil(rows * low)), math.floor(rows * high)))


def _other_level(levels: tuple[str, ...], positive: str) -> int:
    return next(i for i, level in enumerate(levels) if level != positive)


def _text(levels: tuple[str, ...], codes: Codes) -> pd.Series:
    """Level indices as a text column (built once per level, not once per row)."""
    return pd.Series(pd.array(np.asarray(levels, dtype=object)[codes], dtype="str"))
