"""Data validation: a Great Expectations suite derived from the data contract.

`build_expectations` turns `churn.core.contract` into GX Core 1.x expectations, each
carrying a one-line human rule in ``meta["rule"]``. `validate` runs them on a
DataFrame in an ephemeral (in-memory) context and returns a `ValidationReport`
that renders both as text for people and as JSON for machines.

``great_expectations`` takes seconds to import, so it is imported inside the
functions that need it, never at module import.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn.core.contract import Categorical, Contract, Numeric
from churn.core.errors import first_line

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core import ExpectationValidationResult
    from great_expectations.expectations import Expectation

EXAMPLES_SHOWN = 5
NOT_NULL = "expect_column_values_to_not_be_null"
TYPE_NAMES = {"int": ["int", "int64", "Int64Dtype"], "float": ["float", "float64"]}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one expectation, in terms a person can act on."""

    expectation: str
    column: str
    rule: str
    success: bool
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    examples: list[Any] = field(default_factory=list)
    observed: Any = None
    error: str | None = None


@dataclass(frozen=True)
class ValidationReport:
    sources: list[str]
    rows: int
    checks: list[CheckResult]
    source_sha256: dict[str, str] = field(default_factory=dict)
    """Content hash per validated file, so a consumer can tell which data passed."""

    @property
    def success(self) -> bool:
        return all(c.success for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]

    def to_dict(self) -> dict[str, Any]:
        return {
            "success": self.success,
            "sources": self.sources,
            "sha256": self.source_sha256,
            "rows": self.rows,
            "statistics": {
                "evaluated": len(self.checks),
                "successful": len(self.checks) - len(self.failures),
                "failed": len(self.failures),
            },
            "failures": [asdict(c) for c in self.failures],
            "checks": [asdict(c) for c in self.checks],
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=str) + "\n")

    def render(self) -> str:
        """A short text report: one line per failed check with example values."""
        where = ", ".join(self.sources)
        n = len(self.checks)
        if self.success:
            return f"PASSED: {n} of {n} checks on {self.rows} rows ({where})"
        lines = [f"FAILED: {len(self.failures)} of {n} checks on {self.rows} rows ({where})"]
        # A check that could not even run on a column that already failed
        # (a range check on a column of text, any check on a missing column)
        # adds nothing a person needs: count it instead of listing it.
        failed_columns = {c.column for c in self.failures if c.error is None}
        failed_columns |= set(self.missing_columns)
        knock_on = [c for c in self.failures if c.error is not None and c.column in failed_columns]
        for check in self.failures:
            if check in knock_on:
                continue
            lines.append(f"  - {check.column}: {check.rule}")
            lines.append(f"      {_describe(check)}")
        if knock_on:
            lines.append(f"  ({len(knock_on)} more checks could not run on the columns above)")
        return "\n".join(lines)

    @property
    def missing_columns(self) -> list[str]:
        for check in self.checks:
            if check.expectation == "expect_table_columns_to_match_set" and isinstance(
                check.observed, dict
            ):
                return list(check.observed.get("missing", []))
        return []


def _describe(check: CheckResult) -> str:
    if check.error is not None:
        return f"could not be checked: {check.error}"
    if check.expectation == NOT_NULL and check.unexpected_count is not None:
        share = f"{check.unexpected_percent:.2f}%" if check.unexpected_percent is not None else ""
        return f"{check.unexpected_count} rows missing ({share} of rows)"
    if check.unexpected_count is not None:
        share = (
            f" ({check.unexpected_percent:.2f}%)" if check.unexpected_percent is not None else ""
        )
        examples = ", ".join(repr(v) for v in check.examples)
        return f"{check.unexpected_count} offending rows{share}; e.g. {examples}"
    if isinstance(check.observed, dict):
        return "; ".join(f"{key}: {value}" for key, value in check.observed.items())
    return f"observed: {check.observed}"


def _rule(expectation: Expectation, rule: str) -> Expectation:
    expectation.meta = {"rule": rule}
    return expectation


def _number_rules(checks: list[Expectation]) -> list[Expectation]:
    """Record each check's position: GX does not keep suite order in its results."""
    for position, check in enumerate(checks):
        check.meta = {**(check.meta or {}), "order": position}
    return checks


def _not_null(column: Categorical | Numeric) -> Expectation:
    """No blanks in the column, or (a nullable one) blanks in at most ``max_missing`` of rows.

    The column's other checks skip blanks (GX leaves nulls out of level,
    range and type checks), so this is the one check that counts them.
    """
    import great_expectations.expectations as gxe

    if not column.nullable:
        return _rule(gxe.ExpectColumnValuesToNotBeNull(column=column.name), "no missing values")
    return _rule(
        gxe.ExpectColumnValuesToNotBeNull(
            column=column.name, mostly=round(1 - column.max_missing, 6)
        ),
        f"missing in at most {column.max_missing:.1%} of rows",
    )


def build_expectations(contract: Contract) -> list[Expectation]:
    """The contract as GX expectations, table checks first."""
    import great_expectations.expectations as gxe
    from great_expectations.expectations.row_conditions import Column

    levels = contract.levels_by_column
    columns = list(contract.all_columns)
    checks: list[Expectation] = [
        _rule(
            gxe.ExpectTableColumnsToMatchSet(column_set=columns, exact_match=True),
            f"exactly the {len(columns)} contract columns, in any order",
        ),
        _rule(gxe.ExpectTableRowCountToBeBetween(min_value=1), "at least one row"),
        _rule(gxe.ExpectColumnValuesToNotBeNull(column=contract.id.name), "no missing values"),
        _rule(gxe.ExpectColumnValuesToBeUnique(column=contract.id.name), "unique"),
        _rule(
            gxe.ExpectColumnValuesToMatchRegex(column=contract.id.name, regex=contract.id.pattern),
            f"matches {contract.id.pattern}",
        ),
    ]
    for num in contract.numeric:
        checks += [
            _not_null(num),
            _rule(
                gxe.ExpectColumnValuesToBeInTypeList(
                    column=num.name, type_list=TYPE_NAMES[num.kind]
                ),
                f"{'an integer' if num.kind == 'int' else 'a number'}",
            ),
            _rule(
                gxe.ExpectColumnValuesToBeBetween(
                    column=num.name, min_value=num.min_value, max_value=num.max_value
                ),
                f"between {num.min_value:g} and {num.max_value:g}",
            ),
        ]
    for cat in (*contract.categorical, contract.label):
        checks += [
            _not_null(cat),
            _rule(
                gxe.ExpectColumnValuesToBeInSet(column=cat.name, value_set=list(levels[cat.name])),
                f"one of {list(cat.levels)}",
            ),
        ]
    # Cross-field rules as conditional level checks (one per direction the
    # rule has), which pandas evaluates vectorised (ExpectColumnPairValuesToBeInSet
    # walks every row in Python: about 1.6 s per rule on 7k rows, minutes on a million).
    nullable = {c.name for c in contract.categorical if c.nullable}
    for rule in contract.implications:
        when_is = Column(rule.when) == rule.when_value
        when_is_not: Any = Column(rule.when) != rule.when_value
        if rule.when in nullable:  # a blank `when` is not "not when_value": no rule applies
            when_is_not = when_is_not & Column(rule.when).is_not_null()
        # A blank governed column passes both checks: GX's level checks skip nulls.
        for column in rule.then:
            checks.append(
                _rule(
                    gxe.ExpectColumnValuesToBeInSet(
                        column=column,
                        value_set=[rule.then_value],
                        row_condition=when_is,
                    ),
                    f"is {rule.then_value!r} when {rule.when} is {rule.when_value!r} "
                    f"({rule.kind} rule)",
                )
            )
            if rule.one_way:  # other records may hold then_value too
                continue
            others = [lv for lv in levels[column] if lv != rule.then_value]
            checks.append(
                _rule(
                    gxe.ExpectColumnValuesToBeInSet(
                        column=column,
                        value_set=others,
                        row_condition=when_is_not,
                    ),
                    f"is one of {others} when {rule.when} is not {rule.when_value!r} "
                    f"({rule.kind} rule)",
                )
            )
    low, high = contract.label.positive_rate
    positive = contract.label.positive
    negatives = [lv for lv in contract.label.levels if lv != positive]
    checks += [
        _rule(
            gxe.ExpectColumnValuesToBeInSet(
                column=contract.label.name, value_set=[positive], mostly=low
            ),
            f"class balance: at least {low:.0%} of labels are {positive!r}",
        ),
        _rule(
            gxe.ExpectColumnValuesToBeInSet(
                column=contract.label.name, value_set=negatives, mostly=round(1 - high, 6)
            ),
            f"class balance: at most {high:.0%} of labels are {positive!r}",
        ),
    ]
    return _number_rules(checks)


def _column_of(kwargs: dict[str, Any]) -> str:
    if "column" in kwargs:
        return str(kwargs["column"])
    if "column_A" in kwargs:
        return f"{kwargs['column_A']}/{kwargs['column_B']}"
    return "(table)"


def _examples(values: list[Any]) -> list[Any]:
    """Distinct offending values, first seen first, at most `EXAMPLES_SHOWN`."""
    seen: list[Any] = []
    for raw in values:
        value = list(raw) if isinstance(raw, tuple) else raw
        if value not in seen:
            seen.append(value)
        if len(seen) == EXAMPLES_SHOWN:
            break
    return seen


def _observed(result: dict[str, Any]) -> Any:
    """The observed value; for the column-set check, what is missing and extra."""
    mismatched = (result.get("details") or {}).get("mismatched")
    if mismatched:
        return {key: sorted(values) for key, values in mismatched.items() if values}
    return result.get("observed_value")


def _error_message(exception_info: Any) -> str | None:
    """GX reports per-expectation exceptions; keep the first line of the message."""
    infos = exception_info.values() if isinstance(exception_info, dict) else []
    if isinstance(exception_info, dict) and "raised_exception" in exception_info:
        infos = [exception_info]
    for info in infos:
        if isinstance(info, dict) and info.get("raised_exception"):
            return first_line(Exception(info.get("exception_message") or "error"))
    return None


def validate(frame: pd.DataFrame, sources: list[str], contract: Contract) -> ValidationReport:
    """Run the contract's expectations on ``frame`` and summarise the outcome."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(),
        ),
    )
    batch_definition = (
        context.data_sources.add_pandas("records")
        .add_dataframe_asset("records")
        .add_batch_definition_whole_dataframe("all rows")
    )
    # Built in memory, not added to the context's store: storing serialises
    # and deep-copies every expectation, which cost seconds for no benefit.
    suite = gx.ExpectationSuite(name="contract", expectations=build_expectations(contract))
    results = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(
        suite,
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 50},
    )
    checks: list[CheckResult] = []

    def position(outcome: ExpectationValidationResult) -> int:
        config = outcome.expectation_config
        return int(((config.meta if config else None) or {}).get("order", 0))

    for outcome in sorted(results.results, key=position):
        config = outcome.expectation_config
        assert config is not None  # GX attaches the configuration to every result
        result = outcome.result or {}
        error = _error_message(outcome.exception_info)
        checks.append(
            CheckResult(
                expectation=config.type,
                column=_column_of(config.kwargs),
                rule=str((config.meta or {}).get("rule", config.type)),
                success=bool(outcome.success) and error is None,
                unexpected_count=result.get("unexpected_count"),
                unexpected_percent=result.get("unexpected_percent"),
                examples=_examples(result.get("partial_unexpected_list") or []),
                observed=_observed(result),
                error=error,
            )
        )
    return ValidationReport(sources=sources, rows=len(frame), checks=checks)
