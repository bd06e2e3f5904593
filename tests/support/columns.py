"""Columns of the contract picked for a test's purpose, and values that break them.

Tests that change data must keep it valid except where they mean to break
it: these helpers find columns a change cannot break a cross-field rule
with, build values each kind of column refuses, and build the edits that
tell a one-way cross-field rule from a both-ways one.
"""

from __future__ import annotations

from churn.core.contract import Categorical, Contract, Implication, Numeric


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


def with_rule_kind(
    contract: Contract, *, one_way: bool, rule: Implication | None = None
) -> Contract:
    """``contract`` with ``rule`` (else every cross-field rule) made one-way (or both-ways).

    Give the rule when checking data: the domain's data obeys each other rule as
    the contract states it, and a one-way rule's data does not obey it both ways.
    """
    raw = contract.model_dump(mode="json")
    for position, stated in enumerate(contract.implications):
        if rule is None or stated == rule:
            raw["implications"][position]["one_way"] = one_way
    return Contract.model_validate(raw)


def lone_rules(contract: Contract) -> list[Implication]:
    """The cross-field rules that share no column with another rule: editing the
    columns of one of them cannot break any other."""
    return [
        rule
        for rule in contract.implications
        if not any(
            {rule.when, *rule.then} & {other.when, *other.then}
            for other in contract.implications
            if other is not rule
        )
    ]


def converse(contract: Contract, rule: Implication) -> dict[str, str]:
    """Fields that give a record ``rule``'s level without its condition (on its first
    column): valid under a one-way rule, a break of a both-ways one."""
    when = next(lv for lv in contract.levels_by_column[rule.when] if lv != rule.when_value)
    return {rule.when: when, rule.then[0]: rule.then_value}


def forward_break(contract: Contract, rule: Implication) -> dict[str, str]:
    """Fields that give a record ``rule``'s condition and every level it asks for but
    one (its first column): a break of either kind of rule."""
    wrong = next(lv for lv in contract.levels_by_column[rule.then[0]] if lv != rule.then_value)
    return {
        rule.when: rule.when_value,
        **dict.fromkeys(rule.then, rule.then_value),
        rule.then[0]: wrong,
    }


def lone_rule_variants(contract: Contract) -> list[tuple[Implication, Contract, Contract]]:
    """Each lone rule with the contract where it is one-way and where it is both-ways
    (the other rules as stated); skips the test when the contract has no lone rule."""
    import pytest

    rules = lone_rules(contract)
    if not rules:
        pytest.skip("no cross-field rule shares no column with another")
    return [
        (
            rule,
            with_rule_kind(contract, one_way=True, rule=rule),
            with_rule_kind(contract, one_way=False, rule=rule),
        )
        for rule in rules
    ]
