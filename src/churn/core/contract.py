"""The data contract as a value: what one record of the domain looks like.

The contract is data, written by the domain room (``src/churn/domain/
contract.yaml``) and loaded into a frozen `Contract`. Every consumer receives
it as an argument, like the parameters, and derives what it needs from it:
the Great Expectations suite, the model's feature lists and encoder
categories, the typed reading of CSV files, the API's request model, the
MLflow signature, the drift bins. Nothing in the machinery names a column.

A contract describes the *clean* record, the one the model sees. Quirks of a
raw file are repaired by the domain's ``repair`` function before validation,
so the contract stays a description of good data, not of its accidents.
"""

from __future__ import annotations

import re
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator
from pydantic_core import SchemaError as PydanticSchemaError

from churn.core.errors import ContractError
from churn.core.yamlio import load_yaml_model

Scalar = str | int | float

MISSING_LEVEL = ""
"""How a missing categorical value is spelled in the model's input.

ONNX string tensors have no null, so the sklearn pipeline and its ONNX
export both see a blank categorical cell as this string, one more level of a
nullable column (`churn.core.data.features` writes it; the service and batch
scoring send it). A blank cell in a CSV file is a missing value, so no level
of the contract can be blank.
"""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Column(_Frozen):
    """What every feature column has: a name, whether it may be blank, a description."""

    name: str = Field(min_length=1)
    max_missing: float = Field(
        default=0.0,
        ge=0.0,
        lt=1.0,
        description="The largest share of records in which the column may be blank "
        "(0: never). Validation checks the share; the model imputes; the API accepts null.",
    )
    description: str = ""

    @property
    def nullable(self) -> bool:
        return self.max_missing > 0


class Categorical(_Column):
    """A text column whose values come from a fixed, ordered set of levels."""

    levels: tuple[str, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_levels(self) -> Self:
        if len(set(self.levels)) != len(self.levels):
            raise ValueError(f"{self.name}: levels repeat")
        if any(not level.strip() for level in self.levels):
            raise ValueError(f"{self.name}: a level is blank (a blank cell is a missing value)")
        return self


class Numeric(_Column):
    """A numeric column with an inclusive valid range (in the column's unit)."""

    kind: Literal["int", "float"]
    min_value: float
    max_value: float

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min_value > self.max_value:
            raise ValueError(f"{self.name}: min_value > max_value")
        return self


class Implication(_Frozen):
    """A cross-field rule between categorical columns.

    Both ways (the default): ``when`` is ``when_value`` exactly when every
    column in ``then`` holds ``then_value``. One way (``one_way: true``): if
    ``when`` is ``when_value``, every column in ``then`` holds ``then_value``;
    other records may hold it too.
    """

    when: str
    when_value: str
    then: tuple[str, ...] = Field(min_length=1)
    then_value: str
    one_way: bool = False

    def broken_by(self, when: object, then: object) -> bool:
        """Whether one record's ``when`` value and one ``then`` column's value break the rule."""
        holds = when == self.when_value
        if self.one_way:
            return holds and then != self.then_value
        return (then == self.then_value) != holds

    @property
    def kind(self) -> str:
        """The rule's kind in words, for reports."""
        return "one-way" if self.one_way else "both-ways"

    @property
    def requirement(self) -> str:
        """What the rule asks of each ``then`` column, in words, for error messages."""
        link = "when" if self.one_way else "exactly when"
        return f"must be {self.then_value!r} {link} {self.when} is {self.when_value!r}"


class Label(Categorical):
    """The binary label: two levels, one of them the positive class."""

    positive: str
    positive_rate: tuple[float, float] = Field(
        description="The share of positives a real extract has; outside it the data is "
        "almost certainly wrong (a filtered table, a swapped label)."
    )

    @model_validator(mode="after")
    def _binary(self) -> Self:
        if self.max_missing:
            raise ValueError(f"label {self.name}: a label is never missing (max_missing 0)")
        if len(self.levels) != 2:
            raise ValueError(f"label {self.name}: exactly two levels, got {len(self.levels)}")
        if self.positive not in self.levels:
            raise ValueError(f"label {self.name}: positive {self.positive!r} is not a level")
        low, high = self.positive_rate
        if not 0 <= low < high <= 1:
            raise ValueError(f"label {self.name}: positive_rate must be 0 <= low < high <= 1")
        return self


_ASCII_CLASSES = {"d": "0-9", "w": "A-Za-z0-9_", "s": " \\t\\n\\r\\f\\v"}


def ascii_pattern(pattern: str) -> str:
    """``pattern`` with ``\\d``, ``\\w`` and ``\\s`` spelled as ASCII classes.

    Python's ``re`` and pydantic-core's Rust regex give these shorthands their
    Unicode meaning: ``\\d`` matches Arabic-Indic and full-width digits, so an
    id pattern written as ``^\\d{4}$`` would let ``٠١٢٣`` through. Spelled out,
    the pattern means the same in both engines and in Great Expectations.
    Negated shorthands (``\\D``) are left as they are: the API refuses any
    non-ASCII id anyway (`churn.serving.schemas.AsciiId`).
    """
    out: list[str] = []
    in_class = False
    position = 0
    while position < len(pattern):
        char = pattern[position]
        if char == "\\" and position + 1 < len(pattern):
            escaped = pattern[position + 1]
            position += 2
            if escaped in _ASCII_CLASSES:
                ascii_class = _ASCII_CLASSES[escaped]
                out.append(ascii_class if in_class else f"[{ascii_class}]")
            else:
                out.append(char + escaped)
            continue
        if char == "[" and not in_class:
            in_class = True
            out.append(char)
            position += 1
            # A ']' right after '[' or '[^' is a literal member, not the end.
            for lead in ("^", "]"):
                if pattern.startswith(lead, position):
                    out.append(lead)
                    position += 1
            continue
        if char == "]" and in_class:
            in_class = False
        out.append(char)
        position += 1
    return "".join(out)


class Identifier(_Frozen):
    """The column that names a record (never a feature), and its format."""

    name: str = Field(min_length=1)
    pattern: str = Field(description="A regular expression every id matches (ASCII).")
    description: str = ""

    @field_validator("pattern")
    @classmethod
    def _ascii_only(cls, value: str) -> str:
        return ascii_pattern(value)

    @model_validator(mode="after")
    def _compiles(self) -> Self:
        """The pattern must compile for Python (validation) and for pydantic-core's
        regex engine (the API), which has no lookarounds or backreferences."""
        try:
            re.compile(self.pattern)
            TypeAdapter(Annotated[str, Field(pattern=self.pattern)])
        except (re.error, PydanticSchemaError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise ValueError(f"id pattern {self.pattern!r} does not compile: {reason}") from None
        return self


class Contract(_Frozen):
    """One domain's records: the id, the features, the label, the rules between them."""

    title: str = Field(min_length=1, description="What the model predicts, for people.")
    description: str = Field(default="", description="One sentence for the API's summary.")
    id: Identifier
    label: Label
    numeric: tuple[Numeric, ...] = ()
    categorical: tuple[Categorical, ...] = ()
    implications: tuple[Implication, ...] = ()
    example: dict[str, Scalar] = Field(
        description="One real, clean record (features and id): the API's documented example."
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [self.id.name, *self.feature_names, self.label.name]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"columns named twice: {', '.join(repeated)}")
        if not self.feature_names:
            raise ValueError("no feature columns")
        api = [api_name(n) for n in names]
        if len(set(api)) != len(api):
            raise ValueError("two columns share an API name (snake_case)")
        levels = self.levels_by_column
        for rule in self.implications:
            for column, value in (
                (rule.when, rule.when_value),
                *((c, rule.then_value) for c in rule.then),
            ):
                if column not in levels:
                    raise ValueError(f"rule on {column}: not a categorical column")
                if value not in levels[column]:
                    raise ValueError(f"rule on {column}: {value!r} is not one of its levels")
        expected = {self.id.name, *self.feature_names}
        if set(self.example) != expected:
            missing, extra = expected - set(self.example), set(self.example) - expected
            raise ValueError(f"example: missing {sorted(missing)}, unknown {sorted(extra)}")
        if problems := self._example_problems():
            raise ValueError(f"example breaks the contract: {'; '.join(problems)}")
        return self

    def _example_problems(self) -> list[str]:
        """What in the example record the contract itself would refuse."""
        problems = []
        if re.fullmatch(self.id.pattern, str(self.example[self.id.name])) is None:
            problems.append(f"{self.id.name} does not match {self.id.pattern}")
        for num in self.numeric:
            value = self.example[num.name]
            number_ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not number_ok or (num.kind == "int" and not float(value).is_integer()):
                problems.append(
                    f"{num.name}: {value!r} is not a{'n int' if num.kind == 'int' else ' number'}"
                )
            elif not num.min_value <= float(value) <= num.max_value:
                problems.append(
                    f"{num.name}: {value} is outside {num.min_value:g}..{num.max_value:g}"
                )
        for cat in self.categorical:
            if self.example[cat.name] not in cat.levels:
                problems.append(f"{cat.name}: {self.example[cat.name]!r} is not one of its levels")
        for rule in self.implications:
            for column in rule.then:
                if rule.broken_by(self.example[rule.when], self.example[column]):
                    problems.append(f"{column} {rule.requirement}")
        return problems

    # Derived views. Column order is the model's input order: numeric, then categorical.
    @cached_property
    def feature_names(self) -> tuple[str, ...]:
        return (*self.numeric_names, *self.categorical_names)

    @cached_property
    def numeric_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.numeric)

    @cached_property
    def categorical_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categorical)

    @cached_property
    def all_columns(self) -> tuple[str, ...]:
        """Every column of a labelled record (raw file or prepared split)."""
        return (self.id.name, *self.feature_names, self.label.name)

    @cached_property
    def levels_by_column(self) -> dict[str, tuple[str, ...]]:
        return {c.name: c.levels for c in (*self.categorical, self.label)}

    def api_example(self) -> dict[str, Any]:
        """The example record with API (snake_case) field names."""
        return {api_name(column): value for column, value in self.example.items()}


def api_name(column: str) -> str:
    """The snake_case name a column has in JSON APIs: ``accountID`` → ``account_id``."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", column).replace(" ", "_").lower()


def load_contract(path: Path) -> Contract:
    """Read a contract file; `ContractError` names the file and every problem in it."""
    return load_yaml_model(path, Contract, ContractError)
