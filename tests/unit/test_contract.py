from churn import contract
from tests.conftest import FIXTURE


def test_feature_lists_are_disjoint_and_ordered() -> None:
    names = contract.feature_names()
    assert names == contract.numeric_names() + contract.categorical_names()
    assert len(set(names)) == len(names)
    assert contract.ID_COLUMN not in names
    assert contract.LABEL.name not in names


def test_contract_columns_match_the_raw_file_header() -> None:
    header = FIXTURE.read_text().splitlines()[0].split(",")
    assert sorted(header) == sorted(contract.all_columns())


def test_cross_field_rules_name_known_columns_and_levels() -> None:
    levels = contract.levels_by_column()
    for rule in contract.IMPLICATIONS:
        assert rule.when_value in levels[rule.when]
        for column in rule.then:
            assert rule.then_value in levels[column]


def test_positive_label_is_a_label_level() -> None:
    assert contract.POSITIVE_LABEL in contract.LABEL.levels
    low, high = contract.POSITIVE_RATE_RANGE
    assert 0 < low < high < 1
