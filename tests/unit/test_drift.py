"""Drift detection as pure functions, on the real data where the distribution matters.

Column names, levels, rules and the shift come from the domain (its contract
and ``domain.scenarios``); thresholds from ``params.yaml``'s ``drift``.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydantic
import pytest
import yaml
from scipy import stats

from churn.core.contract import Contract
from churn.core.data import clean
from churn.core.domain import Domain, Scenarios
from churn.core.errors import DataError
from churn.core.params import DriftParams, Params, ParamsError, load_params
from churn.monitoring.drift import (
    ReferenceProfile,
    build_profile,
    check,
    chi2_homogeneity,
    chi2_sf,
    compare,
    compare_counts,
    count,
    psi,
)
from tests.support.bad_data import unknown
from tests.support.columns import (
    converse,
    forward_break,
    free_categorical,
    lone_rule_variants,
    rule_text,
)
from tests.support.paths import PARAMS

# Bootstrap sample sizes: choices of the tests, not sizes of the data (rows are
# drawn with replacement, so any reference can give any number).
SAMPLE_ROWS = 2_000
LARGE_SAMPLE_ROWS = 50_000


@pytest.fixture(scope="module")
def drift_params(params: Params) -> DriftParams:
    return params.drift


@pytest.fixture(scope="module")
def reference(raw_real: pd.DataFrame, domain: Domain) -> pd.DataFrame:
    """All the real data, cleaned (read-only; copy to modify)."""
    return clean(raw_real, domain)


@pytest.fixture(scope="module")
def scenarios(domain: Domain) -> Scenarios:
    assert domain.scenarios is not None, "the domain room defines no scenarios (a shift)"
    return domain.scenarios


def bootstrap(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)


def test_identical_data_does_not_drift(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract
) -> None:
    result = compare(reference, reference, drift_params, contract=contract)
    assert not result.drift
    assert result.drifted_features == []
    assert [f.feature for f in result.features] == list(contract.feature_names)
    assert max(f.psi for f in result.features) < 1e-12
    assert min(f.p_value for f in result.features) > 0.99


def test_the_domains_strong_shift_names_the_drifted_features(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract, scenarios: Scenarios
) -> None:
    """The domain's shift at strength 1.0 is drift, and only features it moves are named."""
    current = scenarios.shift(
        bootstrap(reference, SAMPLE_ROWS, seed=1), np.random.default_rng(2), 1.0
    )

    result = compare(reference, current, drift_params, contract=contract)

    assert result.drift
    assert result.drifted_features
    assert set(result.drifted_features) <= set(scenarios.shifted_features)
    by_name = {f.feature: f for f in result.features}
    for name in result.drifted_features:
        expected = "numeric" if name in contract.numeric_names else "categorical"
        assert by_name[name].kind == expected
        assert by_name[name].psi >= drift_params.psi_threshold


def test_no_shift_at_strength_zero(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract, scenarios: Scenarios
) -> None:
    sample = bootstrap(reference, SAMPLE_ROWS, seed=3)
    unshifted = scenarios.shift(sample, np.random.default_rng(4), 0.0)
    result = compare(reference, unshifted, drift_params, contract=contract)
    assert not result.drift
    untouched = [c for c in contract.feature_names if c not in scenarios.shifted_features]
    pd.testing.assert_frame_equal(unshifted[untouched], sample[untouched])


def test_bootstrap_samples_of_the_reference_never_drift(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract
) -> None:
    profile = build_profile(reference, drift_params.numeric_bins, contract=contract)
    for seed in range(20):
        current = bootstrap(reference, SAMPLE_ROWS, seed)
        assert not compare_counts(profile, count(profile, current), drift_params).drift


def test_a_trivial_difference_in_a_large_sample_is_not_drift(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract
) -> None:
    """Many rows, a few of which moved between two levels: the p-value alone would cry wolf.

    The share moved is chosen for a PSI of a quarter of the threshold:
    PSI ~ d^2 (1/p_a + 1/p_b) when a share d moves from level a to level b.
    """
    column = free_categorical(contract)
    if column is None:
        pytest.skip("every categorical feature is in a cross-field rule")
    current = bootstrap(reference, LARGE_SAMPLE_ROWS, seed=3)
    shares = current[column.name].value_counts(normalize=True)
    common, second = shares.index[:2]
    share = math.sqrt(drift_params.psi_threshold / 4 / (1 / shares[common] + 1 / shares[second]))
    rng = np.random.default_rng(4)
    having = current.index[current[column.name].eq(common)]
    moved = rng.choice(having, size=round(share * len(current)), replace=False)
    current.loc[moved, column.name] = second

    result = compare(reference, current, drift_params, contract=contract)

    feature = next(f for f in result.features if f.feature == column.name)
    assert feature.p_value < result.alpha_per_feature  # "significant"
    assert feature.psi < drift_params.psi_threshold  # but small
    assert not result.drift


def test_noise_in_a_small_sample_is_not_drift(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract
) -> None:
    """A sample so small that PSI alone would cry wolf on its noise; the test does not.

    The PSI of noise is about (bins - 1) / rows: the sample is sized for twice
    the threshold on the feature with the most bins.
    """
    profile = build_profile(reference, drift_params.numeric_bins, contract=contract)
    bins = max(len(f.counts) for f in profile.features)
    rows = math.ceil((bins - 1) / (2 * drift_params.psi_threshold))
    current = bootstrap(reference, rows, seed=5)

    result = compare(reference, current, drift_params, contract=contract)

    assert max(f.psi for f in result.features) > drift_params.psi_threshold
    assert not result.drift


def test_current_data_may_lack_the_id_and_the_label(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract
) -> None:
    current = bootstrap(reference, 500, seed=6).drop(
        columns=[contract.id.name, contract.label.name]
    )
    current["score"] = 0.5  # unknown columns are ignored
    result = compare(reference, current, drift_params, contract=contract)
    assert result.current_rows == len(current)
    assert not result.drift


def test_the_overall_rule_counts_drifted_features(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract
) -> None:
    column = free_categorical(contract)
    if column is None:
        pytest.skip("every categorical feature is in a cross-field rule")
    current = bootstrap(reference, SAMPLE_ROWS, seed=7)
    rarest = current[column.name].value_counts().index[-1]
    current[column.name] = rarest  # everyone on one level: a shift no rule forbids
    one = drift_params.model_copy(update={"min_drifted_features": 1})
    two = drift_params.model_copy(update={"min_drifted_features": 2})
    assert compare(reference, current, one, contract=contract).drifted_features == [column.name]
    assert compare(reference, current, one, contract=contract).drift
    assert not compare(reference, current, two, contract=contract).drift


def bad_inputs(reference: pd.DataFrame, contract: Contract) -> list[tuple[str, pd.DataFrame, str]]:
    """(case, frame, what the error must say) for every kind of contract break
    this contract has: each message names the column and the rule."""
    head = reference.head(50).copy()
    first, last = contract.feature_names[0], contract.feature_names[-1]
    cases = [
        ("missing columns", head.drop(columns=[first, last]), f"missing columns {first}, {last}"),
        ("no rows", head.iloc[:0], "no rows"),
    ]
    for column in contract.categorical[:1]:
        level = unknown(column.levels, "not-a-level")
        cases.append(
            ("unknown level", head.assign(**{column.name: level}), f"{column.name} must be one of")
        )
    for numeric in contract.numeric[:1]:
        rule = re.escape(rule_text(numeric))
        cases += [
            ("not a number", head.assign(**{numeric.name: "not-a-number"}), rule),
            ("below the range", head.assign(**{numeric.name: numeric.min_value - 1}), rule),
        ]
    for numeric in [n for n in contract.numeric if not n.nullable][:1]:  # blank is a break
        rule = re.escape(rule_text(numeric))
        cases.append(("missing", head.assign(**{numeric.name: np.nan}), rule))
    for numeric in [n for n in contract.numeric if n.kind == "int"][:1]:
        fraction = numeric.min_value + 0.5
        cases.append(
            (
                "fraction",
                head.assign(**{numeric.name: fraction}),
                f"{numeric.name} must be an integer",
            )
        )
    for implication in contract.implications[:1]:
        # the condition without the level: a break of either kind of rule
        lacking = reference[implication.then[0]].ne(implication.then_value)
        broken = reference[lacking].head(50).assign(**{implication.when: implication.when_value})
        link = "when" if implication.one_way else "exactly when"
        message = (
            f"{implication.then[0]} must be {implication.then_value!r} "
            f"{link} {implication.when} is {implication.when_value!r}"
        )
        cases.append(("cross-field rule", broken, re.escape(message)))
    return cases


def test_bad_input_raises_one_readable_line(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract
) -> None:
    cases = bad_inputs(reference, contract)
    assert len(cases) >= 4  # at least one column kind besides the structural cases
    for case, current, message in cases:
        with pytest.raises(DataError, match=f"^current: .*{message}") as raised:
            compare(reference, current, drift_params, contract=contract)
        assert "\n" not in str(raised.value), case


def test_bad_reference_is_named(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract
) -> None:
    dropped = contract.feature_names[-1]
    with pytest.raises(DataError, match=rf"^reference: missing columns {re.escape(dropped)} "):
        compare(reference.drop(columns=[dropped]), reference, drift_params, contract=contract)


def test_check_shows_examples_of_offending_values(
    reference: pd.DataFrame, contract: Contract
) -> None:
    column = contract.categorical[0]
    level = unknown(column.levels, "not-a-level")
    frame = reference.head(10).copy()
    frame.loc[frame.index[:2], column.name] = level
    expected = rf"{re.escape(column.name)} .* \(2 rows, e\.g\. '{level}', '{level}'\)"
    with pytest.raises(DataError, match=expected):
        check(frame, "batch.csv", contract=contract)


def test_check_lets_a_rules_level_appear_alone_only_under_a_one_way_rule(
    reference: pd.DataFrame, contract: Contract
) -> None:
    for rule, one_way, both_ways in lone_rule_variants(contract):
        alone = reference.head(10).assign(**converse(contract, rule))
        check(alone, "batch.csv", contract=one_way)
        expected = f"{rule.then[0]} must be {rule.then_value!r} exactly when {rule.when} is"
        with pytest.raises(DataError, match=re.escape(expected)):
            check(alone, "batch.csv", contract=both_ways)
        broken = reference.head(10).assign(**forward_break(contract, rule))
        expected = f"{rule.then[0]} must be {rule.then_value!r} when {rule.when} is"
        with pytest.raises(DataError, match=re.escape(expected)):
            check(broken, "batch.csv", contract=one_way)


def test_check_handles_missing_values_in_nullable_string_columns(
    reference: pd.DataFrame, contract: Contract
) -> None:
    """pandas' ``string`` dtype compares a missing value with a level as NA, not False."""
    strict = {c.name for c in contract.categorical if not c.nullable}  # a blank is an error
    ruled = [(r.when, c) for r in contract.implications for c in r.then if c in strict]
    pairs = ruled or [(name, name) for name in sorted(strict)]
    if not pairs:
        pytest.skip("every categorical feature may be blank")
    when, column = pairs[0]
    frame = reference.head(10).astype({when: "string", column: "string"})
    frame.loc[frame.index[0], column] = pd.NA
    expected = rf"{re.escape(column)} must be one of .* \(1 row, e\.g\. <NA>\)"
    with pytest.raises(DataError, match=expected):
        check(frame, "batch.csv", contract=contract)


# --- the statistics ----------------------------------------------------------


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 9, 10, 99])
def test_chi2_sf_matches_scipy(dof: int) -> None:
    for statistic in (0.0, 1e-6, 0.3, 1.0, 5.0, 20.0, 120.0, 900.0):
        expected = float(stats.chi2.sf(statistic, dof))
        assert chi2_sf(statistic, dof) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_chi2_homogeneity_matches_scipy() -> None:
    reference, current = [120, 0, 340, 55], [30, 0, 60, 25]  # an empty bin is dropped
    statistic, dof, p_value = chi2_homogeneity(reference, current)
    expected = stats.chi2_contingency(np.array([[120, 340, 55], [30, 60, 25]]), correction=False)
    assert statistic == pytest.approx(expected.statistic)
    assert dof == expected.dof == 2
    assert p_value == pytest.approx(expected.pvalue)
    assert chi2_homogeneity([10], [4]) == (0.0, 0, 1.0)


def test_psi_is_zero_for_equal_shares_and_symmetric() -> None:
    assert psi([100, 300], [10, 30]) == pytest.approx(0.0, abs=1e-3)
    assert psi([500, 500], [800, 200]) == pytest.approx(psi([800, 200], [500, 500]))
    # sum((q - p) ln(q / p)) with p = (0.5, 0.5), q = (0.8, 0.2), pseudo-counts negligible
    assert psi([50_000, 50_000], [80_000, 20_000]) == pytest.approx(
        0.3 * np.log(1.6) - 0.3 * np.log(0.4), rel=1e-4
    )
    assert np.isfinite(psi([100, 100], [200, 0]))  # an emptied bin: large, not infinite


# --- the reference profile, as a live service would use it -------------------


def test_profile_is_derived_from_the_contract(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract
) -> None:
    profile = build_profile(reference, drift_params.numeric_bins, contract=contract)
    assert [f.name for f in profile.features] == list(contract.feature_names)
    nullable = {c.name for c in (*contract.numeric, *contract.categorical) if c.nullable}
    for feature in profile.features:
        assert sum(feature.counts) == len(reference) == profile.rows
        assert feature.missing == (feature.name in nullable)  # a last bin for blanks
        if feature.kind == "numeric":
            values = feature.counts[:-1] if feature.missing else feature.counts
            present = sum(values)
            assert len(values) <= drift_params.numeric_bins
            # Quantile bins: none holds less than half an equal share.
            assert min(values) > 0.5 * present / drift_params.numeric_bins
    levels = contract.levels_by_column
    assert all(f.levels == levels[f.name] for f in profile.features if f.kind == "categorical")


def test_profile_round_trips_through_json_and_bins_single_values(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract
) -> None:
    profile = build_profile(reference, drift_params.numeric_bins, contract=contract)
    restored = ReferenceProfile.model_validate_json(profile.model_dump_json())
    assert restored == profile
    current = bootstrap(reference, 300, seed=8)
    one_by_one = {
        f.name: np.bincount(
            [f.bin_index(v) for v in current[f.name]], minlength=len(f.counts)
        ).tolist()
        for f in restored.features
    }
    assert one_by_one == {name: c.tolist() for name, c in count(profile, current).items()}
    assert compare_counts(restored, one_by_one, drift_params) == compare_counts(
        profile, count(profile, current), drift_params
    )


def test_profile_refuses_inconsistent_bins() -> None:
    with pytest.raises(pydantic.ValidationError, match="3 counts for 2 bins"):
        ReferenceProfile.model_validate(
            {
                "rows": 3,
                "features": [{"name": "x", "kind": "numeric", "edges": [1.0], "counts": [1, 1, 1]}],
            }
        )
    profile = ReferenceProfile.model_validate(
        {
            "rows": 2,
            "features": [{"name": "c", "kind": "categorical", "levels": ["a"], "counts": [2]}],
        }
    )
    with pytest.raises(ValueError, match="'b' is not one of"):
        profile.features[0].bin_index("b")


def test_comparing_counts_needs_neither_pandas_nor_scipy(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract, tmp_path: Path
) -> None:
    """What a service would do: load a profile, bin request values, compare."""
    path = tmp_path / "profile.json"
    profile = build_profile(reference, drift_params.numeric_bins, contract=contract)
    path.write_text(profile.model_dump_json())
    rule = drift_params.model_copy(update={"min_drifted_features": 1})
    script = f"""
import json, sys
from pathlib import Path
from churn.monitoring.drift import ReferenceProfile, compare_counts
from churn.core.params import DriftParams
profile = ReferenceProfile.model_validate_json(Path({str(path)!r}).read_text())
record = json.loads({json.dumps(json.dumps(contract.example))})
counts = {{f.name: [0] * len(f.counts) for f in profile.features}}
for f in profile.features:
    counts[f.name][f.bin_index(record[f.name])] += 100
params = DriftParams.model_validate_json({rule.model_dump_json()!r})
result = compare_counts(profile, counts, params)
print(json.dumps({{"drift": result.drift, "heavy": sorted(
    m for m in ("pandas", "scipy", "matplotlib") if m in sys.modules)}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    # 100 copies of one record: every feature sits in a single bin, so it drifts.
    assert json.loads(done.stdout) == {"drift": True, "heavy": []}


# --- results and parameters ---------------------------------------------------


def test_result_renders_a_table_and_json(
    reference: pd.DataFrame, drift_params: DriftParams, contract: Contract
) -> None:
    column = free_categorical(contract)
    if column is None:
        pytest.skip("every categorical feature is in a cross-field rule")
    current = bootstrap(reference, 1_000, seed=9)
    current[column.name] = current[column.name].value_counts().index[-1]
    rule = drift_params.model_copy(update={"min_drifted_features": 1})
    features = len(contract.feature_names)

    result = compare(reference, current, rule, contract=contract, sources=("train.csv", "june.csv"))

    text = result.render()
    assert text.startswith(f"DRIFT: 1 of {features} features drifted ({column.name})")
    assert "june.csv" in text.splitlines()[0]
    row = next(line.split() for line in text.splitlines() if line.split()[:1] == [column.name])
    assert row[-1] == "YES"
    data = json.loads(json.dumps(result.to_dict()))
    assert data["drift"] is True
    assert data["drifted_features"] == [column.name]
    assert data["thresholds"]["psi_threshold"] == rule.psi_threshold
    assert data["thresholds"]["alpha_per_feature"] == pytest.approx(rule.alpha / features)
    assert data["current"] == {"source": "june.csv", "rows": len(current)}
    assert len(data["features"]) == features


def test_drift_params_come_from_params_yaml(params: Params, tmp_path: Path) -> None:
    assert 0 < params.drift.psi_threshold < 1
    assert 0 < params.drift.alpha < 1
    parsed = yaml.safe_load(PARAMS.read_text())
    parsed["drift"]["psi_treshold"] = parsed["drift"].pop("psi_threshold")  # a typo
    typo = tmp_path / "params.yaml"
    typo.write_text(yaml.safe_dump(parsed))
    with pytest.raises(ParamsError, match=r"drift\.psi_treshold: Extra inputs"):
        load_params(typo)


def test_a_shift_function_keeps_the_contract(
    reference: pd.DataFrame, contract: Contract, scenarios: Scenarios
) -> None:
    """The domain's shift, at strengths the benchmark uses, gives valid records in
    which every feature it names has moved."""
    assert set(scenarios.shifted_features) <= set(contract.feature_names)
    sample = bootstrap(reference, 500, seed=10)
    for strength in (0.25, 0.5, 1.0):
        shifted = scenarios.shift(sample, np.random.default_rng(11), strength)
        check(shifted, f"shift {strength}", contract=contract)
        unmoved = [c for c in scenarios.shifted_features if shifted[c].equals(sample[c])]
        assert not unmoved, (strength, unmoved)
