"""The data contract as a value: its derived views, and a malformed file named with its field."""

import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from pydantic import ValidationError

from churn.core.contract import Contract, Identifier, Implication, api_name, load_contract
from churn.core.domain import Domain
from churn.core.errors import ContractError
from tests.support.columns import (
    converse,
    forward_break,
    lone_rule_variants,
)


def test_feature_lists_are_disjoint_and_ordered(contract: Contract) -> None:
    names = contract.feature_names
    assert names == contract.numeric_names + contract.categorical_names
    assert len(set(names)) == len(names)
    assert contract.id.name not in names
    assert contract.label.name not in names
    assert contract.all_columns == (contract.id.name, *names, contract.label.name)


def test_contract_columns_match_the_raw_data_header(raw_real: pd.DataFrame, domain: Domain) -> None:
    """Once repaired: a room's repairs may drop columns the model does not use."""
    assert sorted(domain.repair(raw_real).columns) == sorted(domain.contract.all_columns)


def test_cross_field_rules_name_known_columns_and_levels(contract: Contract) -> None:
    levels = contract.levels_by_column
    for rule in contract.implications:
        assert rule.when_value in levels[rule.when]
        for column in rule.then:
            assert rule.then_value in levels[column]


def test_positive_label_is_a_label_level(contract: Contract) -> None:
    assert contract.label.positive in contract.label.levels
    low, high = contract.label.positive_rate
    assert 0 <= low < high <= 1


def test_the_example_is_a_valid_record(contract: Contract) -> None:
    example = contract.example
    assert set(example) == {contract.id.name, *contract.feature_names}
    for column in contract.numeric:
        value = example[column.name]
        assert isinstance(value, int | float), column.name
        assert column.min_value <= value <= column.max_value, column.name
    for categorical in contract.categorical:
        assert example[categorical.name] in categorical.levels, categorical.name
    for rule in contract.implications:
        holds = example[rule.when] == rule.when_value
        for name in rule.then:
            then = example[name] == rule.then_value
            assert then if holds else rule.one_way or not then, (rule, name)


def test_api_names_are_snake_case_and_keep_the_example(contract: Contract) -> None:
    assert api_name("accountID") == "account_id"
    assert api_name("PlanType") == "plan_type"
    assert api_name("already_snake") == "already_snake"
    api = contract.api_example()
    assert list(api) == [api_name(c) for c in contract.example]
    assert list(api.values()) == list(contract.example.values())


def _write(raw: dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_a_written_contract_reads_back_equal(contract: Contract, tmp_path: Path) -> None:
    path = _write(contract.model_dump(mode="json"), tmp_path / "contract.yaml")
    assert load_contract(path) == contract


def _broken(contract: Contract, case: str) -> dict[str, Any]:
    raw = contract.model_dump(mode="json")
    if case == "unknown key":
        raw["id"]["unit"] = "?"
    elif case == "unknown level in a rule" and raw["implications"]:
        raw["implications"][0]["then_value"] = "not-a-level"
    elif case == "example misses a column":
        raw["example"].pop(contract.feature_names[0])
    elif case == "label with three levels":
        raw["label"]["levels"] = [*raw["label"]["levels"], "third"]
    elif case == "a column named twice" and raw["categorical"]:
        raw["categorical"].append(raw["categorical"][0])
    else:
        pytest.skip(f"{case}: not applicable to this contract")
    return raw


@pytest.mark.parametrize(
    ("case", "where"),
    [
        ("unknown key", r"id\.unit"),
        ("unknown level in a rule", "not one of its levels"),
        ("example misses a column", "example: missing"),
        ("label with three levels", "exactly two levels"),
        ("a column named twice", "columns named twice"),
    ],
)
def test_a_malformed_contract_names_the_file_and_the_problem(
    contract: Contract, tmp_path: Path, case: str, where: str
) -> None:
    path = _write(_broken(contract, case), tmp_path / "contract.yaml")
    with pytest.raises(ContractError, match=where) as raised:
        load_contract(path)
    assert str(raised.value).startswith(f"{path}: ")
    assert "\n" not in str(raised.value)


def test_an_unreadable_contract_file(tmp_path: Path) -> None:
    with pytest.raises(ContractError, match=r"absent\.yaml: No such file"):
        load_contract(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: [unclosed\n")
    with pytest.raises(ContractError, match="not valid YAML"):
        load_contract(bad)


@pytest.mark.parametrize("pattern", [r"^(?=A)[A-Z]{4}$", r"^(a)\1$", r"^[0-9"])
def test_an_id_pattern_the_api_cannot_enforce_is_refused(pattern: str) -> None:
    """The API validates ids with pydantic-core's regex engine: no lookarounds or
    backreferences. The contract says so at load time, naming the pattern."""
    with pytest.raises(ValidationError, match="does not compile"):
        Identifier(name="ref", pattern=pattern)


def test_an_example_that_breaks_the_contract_is_refused(contract: Contract) -> None:
    column = contract.numeric[0]
    raw = contract.model_dump()
    raw["example"][column.name] = column.max_value + 1
    with pytest.raises(ValidationError, match=f"example breaks the contract: {column.name}"):
        Contract.model_validate(raw)


@pytest.mark.parametrize("one_way", [True, False], ids=["one-way", "both-ways"])
def test_a_rule_is_broken_by_its_condition_without_its_level_and_one_way_only_so(
    one_way: bool,
) -> None:
    rule = Implication(when="w", when_value="a", then=("t",), then_value="x", one_way=one_way)

    assert rule.broken_by("a", "y")  # the condition without the level
    assert not rule.broken_by("a", "x")
    assert not rule.broken_by("b", "y")
    assert rule.broken_by("b", "x") is not one_way  # the level without the condition
    link = "when" if one_way else "exactly when"
    assert rule.requirement == f"must be 'x' {link} w is 'a'"
    assert rule.kind == ("one-way" if one_way else "both-ways")


def _example_with(contract: Contract, fields: dict[str, str]) -> dict[str, Any]:
    raw = contract.model_dump(mode="json")
    raw["example"].update(fields)
    return raw


def test_an_example_with_a_rules_level_alone_is_valid_only_one_way(contract: Contract) -> None:
    for rule, one_way, both_ways in lone_rule_variants(contract):
        Contract.model_validate(_example_with(one_way, converse(contract, rule)))
        message = f"{rule.then[0]} must be {rule.then_value!r} exactly when {rule.when} is"
        with pytest.raises(ValidationError, match=re.escape(message)):
            Contract.model_validate(_example_with(both_ways, converse(contract, rule)))
        message = f"{rule.then[0]} must be {rule.then_value!r} when {rule.when} is"
        with pytest.raises(ValidationError, match=re.escape(message)):
            Contract.model_validate(_example_with(one_way, forward_break(contract, rule)))
