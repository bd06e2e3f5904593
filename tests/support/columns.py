"""Columns of the contract picked for a test's purpose, and values that break them.

Tests that change data must keep it valid except where they mean to break
it: these helpers find columns a change cannot break a cross-field rule
with, and build values each kind of column refuses.
"""

from __future__ import annotations

from churn.core.contract import Categorical, Contract, Numeric


def ruled_columns(contract: Contract) -> set[str]:
    """Every column a cross-field rule mentions."""
    return {name for rule in contract.implications for name in (rule.when, *rule.then)}


def free_categorical(contract: Contract) -> Categorical | None:
    """The first categorical feature with two or more levels that no cross-field
    rule mentions: setting it to any of its levels keeps every record valid."""
    ruled = ruled_columns(contract)
    return next(
        (c for c in contract.categorical if c.name not in ruled and len(c.levels) > 1), None
    )


def rule_text(numeric: Numeric) -> str:
    """How `churn.monitoring.drift.check` words a numeric column's rule."""
    what = "an integer" if numeric.kind == "int" else "a number"
    return f"{numeric.name} must be {what} in {numeric.min_value:g}..{numeric.max_value:g}"
