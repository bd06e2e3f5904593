"""`churn.pipeline.synth`: valid, reproducible, learnable records for any data contract.

Run on two domain rooms, the package's own and the synthetic loans one, and
on small contracts built here for what neither has (chained rules, odd id
patterns). Validity is judged by the real Great Expectations suite.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from churn.core.contract import Contract, Identifier, Implication
from churn.core.data import features, label, load
from churn.core.domain import DEFAULT_DOMAIN, Domain, load_domain
from churn.core.errors import ContractError
from churn.core.params import Params
from churn.pipeline.synth import generate, id_pattern_ids
from tests.support.domains import synthetic_domain, write_generated

ROOMS = {"own room": lambda: load_domain(DEFAULT_DOMAIN), "synthetic room": synthetic_domain}


@pytest.fixture(scope="module", params=sorted(ROOMS))
def room(request: pytest.FixtureRequest) -> Domain:
    domain: Domain = ROOMS[request.param]()
    return domain


# -- Records of a real domain room ------------------------------------------------


def test_generated_records_pass_the_contracts_validation(room: Domain, tmp_path: Path) -> None:
    from churn.pipeline.validation import validate

    rows = 2000
    path = write_generated(tmp_path / "records.csv", room.contract, rows, seed=3)
    frame = load([path], room)  # as `prepare` reads a raw file: repairs, then types

    report = validate(frame, [str(path)], room.contract)

    assert report.success, report.render()
    assert report.rows == rows


def test_columns_come_in_contract_order_with_their_kinds(room: Domain) -> None:
    contract = room.contract
    frame = generate(contract, 5000, seed=1)

    assert tuple(frame.columns) == contract.all_columns
    for column in contract.numeric:
        values = frame[column.name].dropna()
        assert values.between(column.min_value, column.max_value).all(), column.name
        if column.kind == "int":
            assert pd.api.types.is_integer_dtype(values), column.name
        else:  # whole cents: what a CSV of amounts holds
            assert np.allclose(values * 100, (values * 100).round()), column.name
    for name, levels in contract.levels_by_column.items():
        assert set(frame[name].dropna()) == set(levels), f"{name}: every level in 5,000 rows"
    assert frame[contract.id.name].is_unique


def test_nullable_columns_have_blanks_within_their_share(room: Domain) -> None:
    """Half of each nullable column's max_missing is blank; other columns never are."""
    contract = room.contract
    frame = generate(contract, 4000, seed=2)

    for column in (*contract.numeric, *contract.categorical):
        share = frame[column.name].isna().mean()
        assert share == pytest.approx(column.max_missing / 2, abs=1 / 4000), column.name
    assert frame[[contract.id.name, contract.label.name]].notna().all().all()


def test_the_same_seed_gives_the_same_records(room: Domain) -> None:
    first = generate(room.contract, 500, seed=11)

    pd.testing.assert_frame_equal(first, generate(room.contract, 500, seed=11))
    other = generate(room.contract, 500, seed=12)
    assert not first.drop(columns=room.contract.id.name).equals(
        other.drop(columns=room.contract.id.name)
    )


@pytest.mark.parametrize("rows", [40, 999, 20_000])
def test_the_positive_rate_is_the_middle_of_the_contracts_range(room: Domain, rows: int) -> None:
    low, high = room.contract.label.positive_rate
    frame = generate(room.contract, rows, seed=rows)

    rate = frame[room.contract.label.name].eq(room.contract.label.positive).mean()

    assert low <= rate <= high
    assert rate == pytest.approx((low + high) / 2, abs=1 / rows)


def test_the_label_depends_on_the_features(room: Domain, params: Params) -> None:
    """The default model learns it well, but not perfectly (the noise is real)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from churn.pipeline.model import build_pipeline

    contract = room.contract
    frame = generate(contract, 4000, seed=5)
    train, test = train_test_split(
        frame, test_size=0.25, random_state=0, stratify=frame[contract.label.name]
    )
    model = build_pipeline(params.train, contract).fit(
        features(train, contract), label(train, contract)
    )

    auc = roc_auc_score(label(test, contract), model.predict_proba(features(test, contract))[:, 1])

    assert 0.75 <= auc <= 0.95


# -- The synthetic room's scenario ------------------------------------------------


def test_the_synthetic_shift_is_caught_on_the_features_it_moves(params: Params) -> None:
    from churn.monitoring.drift import check, compare

    domain = synthetic_domain()
    assert domain.scenarios is not None
    contract = domain.contract
    reference = generate(contract, 3000, seed=0)
    current = generate(contract, 2000, seed=1, first_id=3000)
    rng = np.random.default_rng(0)

    shifted = domain.scenarios.shift(current, rng, 1.0)
    unchanged = domain.scenarios.shift(current, rng, 0.0)

    check(shifted, "shifted", contract=contract)  # still valid records
    moved = [c for c in current.columns if not current[c].equals(shifted[c])]
    assert sorted(moved) == sorted(domain.scenarios.shifted_features)
    drifted = compare(reference, shifted, params.drift, contract=contract).drifted_features
    assert set(drifted) == set(domain.scenarios.shifted_features)
    pd.testing.assert_frame_equal(unchanged, current)
    assert compare(reference, unchanged, params.drift, contract=contract).drifted_features == []


# -- Ids from a pattern -------------------------------------------------------------


@pytest.mark.parametrize(
    "pattern",
    [
        r"^[0-9]{4}-[A-Z]{5}$",
        r"^LN-[A-Z]{2}\d{6}$",
        r"^(?:INV|CR)_[a-f0-9]{3,}$",
        r"^x\.[A-Z]?[0-9]+$",
        r"^ref-(\d\d)+$",
        r"id[._-]\w{2,8}",
        r"^[A-Z]$",
    ],
)
def test_ids_match_their_pattern_and_are_unique(pattern: str) -> None:
    rows = 26  # the last pattern holds exactly 26

    ids = id_pattern_ids(pattern, rows)

    assert len(ids) == rows
    assert ids.is_unique
    assert all(re.fullmatch(pattern, value) for value in ids)


def test_ids_from_disjoint_ranges_do_not_repeat() -> None:
    pattern = r"^[0-9]{4}-[A-Z]{5}$"

    first, second = id_pattern_ids(pattern, 300), id_pattern_ids(pattern, 300, first=300)

    assert not set(first) & set(second)


@pytest.mark.parametrize(
    "pattern",
    # Patterns the contract accepts but the generator cannot follow (lookarounds
    # and backreferences the contract itself refuses: tests/unit/test_contract.py).
    [r"^[^0-9]{6}$", r"^\D{5}$", r"(?i)^ab[0-9]{4}$", r"^a$b"],
)
def test_a_pattern_it_cannot_follow_is_named(pattern: str, contract: Contract) -> None:
    odd = contract.model_copy(update={"id": Identifier(name=contract.id.name, pattern=pattern)})

    with pytest.raises(ContractError, match="cannot generate ids") as raised:
        generate(odd, 10, seed=0)

    assert repr(pattern) in str(raised.value)


def test_a_pattern_with_too_few_ids_says_how_many_it_has() -> None:
    with pytest.raises(ContractError, match="about 20 distinct ids"):
        id_pattern_ids(r"^[AB]-[0-9]$", 21)


# -- Rules and ranges that neither room has ------------------------------------------


def _contract(**changes: Any) -> Contract:
    """A small contract: a gate level ``a`` that reserves a level of ``b``, which
    in turn reserves one of ``c`` (a chain of rules); ``changes`` replace fields."""
    fields: dict[str, Any] = {
        "title": "Test",
        "id": {"name": "key", "pattern": "^K[0-9]{5}$"},
        "label": {"name": "y", "levels": ["n", "p"], "positive": "p", "positive_rate": [0.1, 0.3]},
        "numeric": [
            {"name": "count", "kind": "int", "min_value": 3, "max_value": 3},
            {"name": "share", "kind": "float", "min_value": 0.001, "max_value": 0.004},
        ],
        "categorical": [
            {"name": "a", "levels": ["x", "z"]},
            {"name": "b", "levels": ["p", "q", "no b"]},
            {"name": "c", "levels": ["no c", "r", "s"]},
        ],
        "implications": [
            {"when": "a", "when_value": "x", "then": ["b"], "then_value": "no b"},
            {"when": "b", "when_value": "no b", "then": ["c"], "then_value": "no c"},
        ],
        "example": {"key": "K00001", "count": 3, "share": 0.002, "a": "z", "b": "p", "c": "r"},
    }
    return Contract.model_validate(fields | changes)


def _holds(frame: pd.DataFrame, rule: Implication) -> bool:
    """The rule holds in every record: forwards, and backwards too unless it is one-way."""
    when = frame[rule.when].eq(rule.when_value)
    for column in rule.then:
        then = frame[column].eq(rule.then_value)
        if (when & ~then).any() or (not rule.one_way and (then & ~when).any()):
            return False
    return True


def _level_without_condition(frame: pd.DataFrame, rule: Implication) -> bool:
    """Some record holds the rule's level without its condition (a one-way rule allows it)."""
    when = frame[rule.when].eq(rule.when_value)
    return any((frame[column].eq(rule.then_value) & ~when).any() for column in rule.then)


def test_chained_rules_hold_both_ways() -> None:
    contract = _contract()

    frame = generate(contract, 3000, seed=0)

    for rule in contract.implications:
        assert _holds(frame, rule), rule
        assert frame[rule.when].eq(rule.when_value).any(), "the rule is exercised"


def test_a_one_way_rule_holds_forwards_and_its_level_also_appears_alone() -> None:
    """A one-way rule in a chain: ``a = x`` sets ``b = no b`` (one way), which sets
    ``c = no c`` (both ways); ``no b`` is also drawn for records without ``a = x``."""
    contract = _contract(
        implications=[
            {"when": "a", "when_value": "x", "then": ["b"], "then_value": "no b", "one_way": True},
            {"when": "b", "when_value": "no b", "then": ["c"], "then_value": "no c"},
        ]
    )
    one_way, both_ways = contract.implications

    frame = generate(contract, 3000, seed=0)

    assert _holds(frame, one_way)
    assert _holds(frame, both_ways)
    assert frame[one_way.when].eq(one_way.when_value).any(), "the rule is exercised"
    assert _level_without_condition(frame, one_way)
    assert not _level_without_condition(frame, both_ways)


def test_every_rule_of_a_room_holds_and_is_exercised(room: Domain) -> None:
    frame = generate(room.contract, 5000, seed=2)

    for rule in room.contract.implications:
        assert _holds(frame, rule), rule
        assert frame[rule.when].eq(rule.when_value).any(), rule
        assert _level_without_condition(frame, rule) == rule.one_way, rule


def test_rules_that_cannot_hold_together_are_refused() -> None:
    contract = _contract(
        implications=[
            {"when": "a", "when_value": "x", "then": ["c"], "then_value": "no c"},
            {"when": "b", "when_value": "p", "then": ["c"], "then_value": "no c"},
        ],
        # One record can satisfy both (so the contract loads); a table cannot
        # have a without b and still keep both rules.
        example={"key": "K00001", "count": 3, "share": 0.002, "a": "x", "b": "p", "c": "no c"},
    )

    with pytest.raises(ContractError, match="cannot be satisfied"):
        generate(contract, 1000, seed=0)


def test_a_one_way_rule_cannot_set_a_level_a_both_ways_rule_reserves() -> None:
    """``c = no c`` exactly when ``a = x``; ``b = p`` would set it (one way) without ``a = x``."""
    contract = _contract(
        implications=[
            {"when": "a", "when_value": "x", "then": ["c"], "then_value": "no c"},
            {"when": "b", "when_value": "p", "then": ["c"], "then_value": "no c", "one_way": True},
        ],
        example={"key": "K00001", "count": 3, "share": 0.002, "a": "x", "b": "p", "c": "no c"},
    )

    with pytest.raises(ContractError, match=r"rule a='x' -> c='no c': cannot be satisfied"):
        generate(contract, 1000, seed=0)


def test_narrow_ranges_are_kept() -> None:
    """An int range of one value; a float range narrower than a cent is not rounded."""
    frame = generate(_contract(), 1000, seed=0)

    assert frame["count"].eq(3).all()
    assert frame["share"].between(0.001, 0.004).all()
    assert frame["share"].nunique() > 100
