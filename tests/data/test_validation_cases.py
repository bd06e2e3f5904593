"""The validate stage catches each kind of bad data, and lets valid variations pass.

The cases come from the contract (`tests.support.bad_data`): each edits good
real records in the raw (text) format, as a broken export would, then runs
the same clean + validate path as the pipeline.
"""

from pathlib import Path

import pandas as pd
import pytest

from churn.core.contract import Contract
from churn.core.data import clean, read_csv
from churn.core.domain import Domain, load_domain
from churn.pipeline.validation import ValidationReport, validate
from tests.support.bad_data import (
    COLUMNS,
    LEVELS,
    NOT_NULL,
    RANGE,
    ROWS,
    TYPE,
    UNIQUE,
    Edit,
    bad_cases,
    set_cell,
    unknown,
)
from tests.support.columns import (
    converse,
    forward_break,
    free_categorical,
    lone_rules,
    with_rule_kind,
)

# Built at collection, from the domain the `domain` fixture loads too.
CASES = {case.name: case for case in bad_cases(load_domain())}


@pytest.fixture(scope="module")
def sample(sample_csv: Path) -> pd.DataFrame:
    """Real records, both classes, every level the data has: quick to validate."""
    return read_csv(sample_csv)


def _check(frame: pd.DataFrame, domain: Domain, source: str) -> ValidationReport:
    return validate(clean(frame, domain), [source], domain.contract)


def test_the_sample_itself_passes(sample: pd.DataFrame, domain: Domain) -> None:
    report = _check(sample.copy(), domain, "sample")
    assert report.success, report.render()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_data_is_caught_and_named(sample: pd.DataFrame, domain: Domain, name: str) -> None:
    case = CASES[name]
    report = _check(case.edit(sample.copy()), domain, name)
    text = report.render()
    assert not report.success
    failed = [
        c for c in report.failures if (c.column, c.expectation) == (case.column, case.expectation)
    ]
    assert failed, text
    assert text.startswith("FAILED")
    assert f"- {case.column}:" in text
    if case.example is not None:
        assert any(case.example in c.examples for c in failed), failed
        assert repr(case.example) in text


def test_every_kind_of_fault_has_a_case(contract: Contract) -> None:
    kinds = {c.expectation for c in CASES.values()}
    assert kinds >= {COLUMNS, ROWS, TYPE, RANGE, LEVELS, NOT_NULL, UNIQUE}
    ranged = {c.column for c in CASES.values() if c.expectation == RANGE}
    assert ranged == set(contract.numeric_names)
    rules = [c for c in CASES.values() if c.name.startswith("rule:")]
    # a one-way rule can only be broken forwards, a both-ways rule both ways
    assert len(rules) == sum(1 if r.one_way else 2 for r in contract.implications)


def test_single_class_fails_only_the_balance_check(sample: pd.DataFrame, domain: Domain) -> None:
    report = _check(CASES["single-class label"].edit(sample.copy()), domain, "one class")
    low = domain.contract.label.positive_rate[0]
    positive = domain.contract.label.positive
    assert [c.rule for c in report.failures] == [
        f"class balance: at least {low:.0%} of labels are {positive!r}"
    ]


def test_missing_column_does_not_flood_the_report(sample: pd.DataFrame, domain: Domain) -> None:
    dropped = domain.contract.categorical_names[0]
    text = _check(sample.drop(columns=[dropped]), domain, "missing").render()
    assert f"missing: [{dropped!r}]" in text
    assert "could not run on the columns above" in text
    assert f"- {dropped}:" not in text


def _half_of_each_class(label: str) -> Edit:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        return frame.groupby(label, group_keys=False).sample(frac=0.5, random_state=2)

    return edit


@pytest.mark.parametrize(
    "variation",
    [
        pytest.param(lambda f: f[list(reversed(f.columns))], id="reordered columns"),
        pytest.param(lambda f: f.sample(frac=1, random_state=1), id="shuffled rows"),
        pytest.param(None, id="subsample"),
    ],
)
def test_valid_variations_pass(
    sample: pd.DataFrame, domain: Domain, variation: Edit | None
) -> None:
    edit = variation or _half_of_each_class(domain.contract.label.name)
    report = _check(edit(sample.copy()), domain, "variation")
    assert report.success, report.render()


def test_report_as_json(sample: pd.DataFrame, domain: Domain) -> None:
    column = free_categorical(domain.contract)  # a rule would add a second failure
    if column is None:
        pytest.skip("every categorical column is in a cross-field rule")
    level = unknown(column.levels, "not-a-level")
    report = _check(set_cell(column.name, level)(sample.copy()), domain, "bad.csv")
    data = report.to_dict()
    assert data["success"] is False
    assert data["statistics"]["failed"] == len(data["failures"]) == 1
    assert data["failures"][0]["column"] == column.name
    assert data["failures"][0]["expectation"] == LEVELS
    assert data["failures"][0]["examples"] == [level]
    assert data["statistics"]["evaluated"] == len(data["checks"])


def _edit_row_0(fields: dict[str, str]) -> Edit:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        for name, value in fields.items():
            frame = set_cell(name, value)(frame)
        return frame

    return edit


# The rules whose columns no other rule touches (an edit of one breaks no other).
LONE_RULES = [
    pytest.param(i, id=f"{r.when}->{r.then[0]}")
    for i, r in enumerate(lone_rules(load_domain().contract))
]


@pytest.mark.parametrize("index", LONE_RULES)
def test_a_rules_level_without_its_condition_passes_only_one_way(
    sample: pd.DataFrame, domain: Domain, index: int
) -> None:
    rule = lone_rules(domain.contract)[index]
    edited = clean(_edit_row_0(converse(domain.contract, rule))(sample.copy()), domain)
    contract = domain.contract
    one_way = validate(edited, ["converse"], with_rule_kind(contract, one_way=True, rule=rule))
    both_ways = validate(edited, ["converse"], with_rule_kind(contract, one_way=False, rule=rule))

    assert one_way.success, one_way.render()
    assert not both_ways.success
    failed = {c.column for c in both_ways.failures}
    assert rule.then[0] in failed
    assert failed <= set(rule.then)
    assert "(both-ways rule)" in both_ways.render()
    assert repr(rule.then_value) in both_ways.render()


@pytest.mark.parametrize("one_way", [True, False], ids=["one-way", "both-ways"])
@pytest.mark.parametrize("index", LONE_RULES)
def test_a_forward_break_fails_either_kind_and_the_report_names_it(
    sample: pd.DataFrame, domain: Domain, index: int, one_way: bool
) -> None:
    rule = lone_rules(domain.contract)[index]
    if rule.one_way and not one_way:
        pytest.skip("the domain's data obeys this rule one way only: both ways it breaks anyway")
    fields = forward_break(domain.contract, rule)
    edited = clean(_edit_row_0(fields)(sample.copy()), domain)
    variant = with_rule_kind(domain.contract, one_way=one_way, rule=rule)
    report = validate(edited, ["forward"], variant)

    kind = "one-way" if one_way else "both-ways"
    assert [(c.column, c.rule) for c in report.failures] == [
        (
            rule.then[0],
            f"is {rule.then_value!r} when {rule.when} is {rule.when_value!r} ({kind} rule)",
        )
    ]
    assert report.failures[0].examples == [fields[rule.then[0]]]
