"""Drift detection as pure functions, on the real file where the distribution matters."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pydantic
import pytest
from scipy import stats

from churn import contract
from churn.data import clean
from churn.drift import (
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
from churn.errors import DataError
from churn.params import DriftParams, ParamsError, load_params
from tests.conftest import REPO


@pytest.fixture(scope="module")
def drift_params() -> DriftParams:
    return load_params(REPO / "params.yaml").drift


@pytest.fixture(scope="module")
def reference(raw_real: pd.DataFrame) -> pd.DataFrame:
    """The real file, cleaned: 7,043 customers (read-only; copy to modify)."""
    return clean(raw_real)


def bootstrap(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return frame.iloc[rng.integers(0, len(frame), rows)].reset_index(drop=True)


def test_identical_data_does_not_drift(reference: pd.DataFrame, drift_params: DriftParams) -> None:
    result = compare(reference, reference, drift_params)
    assert not result.drift
    assert result.drifted_features == []
    assert [f.feature for f in result.features] == contract.feature_names()
    assert max(f.psi for f in result.features) < 1e-12
    assert min(f.p_value for f in result.features) > 0.99


def test_a_clear_shift_names_the_drifted_features(
    reference: pd.DataFrame, drift_params: DriftParams
) -> None:
    """Half the customers on one- or two-year contracts go month-to-month and pay 25% more."""
    current = bootstrap(reference, 3_000, seed=1)
    rng = np.random.default_rng(2)
    moves = current["Contract"].ne("Month-to-month") & (rng.random(len(current)) < 0.5)
    current.loc[moves, "Contract"] = "Month-to-month"
    current["MonthlyCharges"] = (current["MonthlyCharges"] * 1.25).round(2)

    result = compare(reference, current, drift_params)

    assert result.drift
    assert result.drifted_features == ["MonthlyCharges", "Contract"]
    by_name = {f.feature: f for f in result.features}
    assert by_name["Contract"].kind == "categorical"
    assert by_name["MonthlyCharges"].kind == "numeric"
    # The drifted level: month-to-month's share went up.
    contract_drift = by_name["Contract"]
    month = contract_drift.bins.index("Month-to-month")
    assert contract_drift.current_counts[month] / result.current_rows > (
        contract_drift.reference_counts[month] / result.reference_rows + 0.1
    )


def test_bootstrap_samples_of_the_reference_never_drift(
    reference: pd.DataFrame, drift_params: DriftParams
) -> None:
    profile = build_profile(reference, drift_params.numeric_bins)
    for seed in range(20):
        current = bootstrap(reference, 2_000, seed)
        assert not compare_counts(profile, count(profile, current), drift_params).drift


def test_a_trivial_difference_in_a_large_sample_is_not_drift(
    reference: pd.DataFrame, drift_params: DriftParams
) -> None:
    """50,000 rows with 4% more month-to-month customers: the p-value alone would cry wolf."""
    current = bootstrap(reference, 50_000, seed=3)
    rng = np.random.default_rng(4)
    moves = current["Contract"].eq("Two year") & (rng.random(len(current)) < 0.15)
    current.loc[moves, "Contract"] = "Month-to-month"

    result = compare(reference, current, drift_params)

    contract_drift = next(f for f in result.features if f.feature == "Contract")
    assert contract_drift.p_value < 1e-10  # "significant"
    assert contract_drift.psi < drift_params.psi_threshold  # but small
    assert not result.drift


def test_noise_in_a_small_sample_is_not_drift(
    reference: pd.DataFrame, drift_params: DriftParams
) -> None:
    """40 rows: PSI alone would cry wolf on sampling noise; the test does not."""
    current = bootstrap(reference, 40, seed=5)

    result = compare(reference, current, drift_params)

    assert max(f.psi for f in result.features) > drift_params.psi_threshold
    assert not result.drift


def test_current_data_may_lack_the_id_and_the_label(
    reference: pd.DataFrame, drift_params: DriftParams
) -> None:
    current = bootstrap(reference, 500, seed=6).drop(
        columns=[contract.ID_COLUMN, contract.LABEL.name]
    )
    current["score"] = 0.5  # unknown columns are ignored
    result = compare(reference, current, drift_params)
    assert result.current_rows == 500
    assert not result.drift


def test_the_overall_rule_counts_drifted_features(reference: pd.DataFrame) -> None:
    current = bootstrap(reference, 3_000, seed=7)
    current["Contract"] = "Month-to-month"
    one = DriftParams(psi_threshold=0.1, alpha=0.01, numeric_bins=10, min_drifted_features=1)
    two = one.model_copy(update={"min_drifted_features": 2})
    assert compare(reference, current, one).drifted_features == ["Contract"]
    assert compare(reference, current, one).drift
    assert not compare(reference, current, two).drift


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["tenure", "Contract"]), "missing columns tenure, Contract"),
        (lambda f: f.iloc[:0], "no rows"),
        (lambda f: f.assign(Contract="Weekly"), "Contract must be one of"),
        (lambda f: f.assign(tenure="twelve"), "tenure must be an integer in 0..72"),
        (lambda f: f.assign(tenure=1.5), "tenure must be an integer"),
        (lambda f: f.assign(MonthlyCharges=-5.0), "MonthlyCharges must be a number in 0..200"),
        (lambda f: f.assign(TotalCharges=np.nan), "TotalCharges must be a number"),
        (
            lambda f: f.assign(PhoneService="No"),
            "MultipleLines must be 'No phone service' exactly when PhoneService is 'No'",
        ),
    ],
)
def test_bad_input_raises_one_readable_line(
    reference: pd.DataFrame,
    drift_params: DriftParams,
    change: Callable[[pd.DataFrame], pd.DataFrame],
    message: str,
) -> None:
    current = change(reference.head(50).copy())
    with pytest.raises(DataError, match=f"^current: .*{message}") as raised:
        compare(reference, current, drift_params)
    assert "\n" not in str(raised.value)


def test_bad_reference_is_named(reference: pd.DataFrame, drift_params: DriftParams) -> None:
    with pytest.raises(DataError, match=r"^reference: missing columns gender"):
        compare(reference.drop(columns=["gender"]), reference, drift_params)


def test_check_shows_examples_of_offending_values(reference: pd.DataFrame) -> None:
    frame = reference.head(10).copy()
    frame.loc[frame.index[:2], "Contract"] = "Weekly"
    with pytest.raises(DataError, match=r"Contract .* \(2 rows, e\.g\. 'Weekly', 'Weekly'\)"):
        check(frame, "batch.csv")


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
    reference: pd.DataFrame, drift_params: DriftParams
) -> None:
    profile = build_profile(reference, drift_params.numeric_bins)
    assert [f.name for f in profile.features] == contract.feature_names()
    for feature in profile.features:
        assert sum(feature.counts) == len(reference) == profile.rows
        if feature.kind == "numeric":
            assert len(feature.counts) <= drift_params.numeric_bins
            assert min(feature.counts) > 0.05 * len(reference)  # roughly equal bins
    levels = contract.levels_by_column()
    assert all(f.levels == levels[f.name] for f in profile.features if f.kind == "categorical")


def test_profile_round_trips_through_json_and_bins_single_values(
    reference: pd.DataFrame, drift_params: DriftParams
) -> None:
    profile = build_profile(reference, drift_params.numeric_bins)
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
    reference: pd.DataFrame, drift_params: DriftParams, tmp_path: Path
) -> None:
    """What a service would do: load a profile, bin request values, compare."""
    path = tmp_path / "profile.json"
    path.write_text(build_profile(reference, drift_params.numeric_bins).model_dump_json())
    script = f"""
import json, sys
from pathlib import Path
from churn.drift import ReferenceProfile, compare_counts
from churn.params import DriftParams
profile = ReferenceProfile.model_validate_json(Path({str(path)!r}).read_text())
customer = {json.dumps(contract.EXAMPLE)}
counts = {{f.name: [0] * len(f.counts) for f in profile.features}}
for f in profile.features:
    counts[f.name][f.bin_index(customer[f.name])] += 100
params = DriftParams(psi_threshold=0.1, alpha=0.01, numeric_bins=10, min_drifted_features=1)
result = compare_counts(profile, counts, params)
print(json.dumps({{"drift": result.drift, "heavy": sorted(
    m for m in ("pandas", "scipy", "matplotlib") if m in sys.modules)}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    # 100 copies of one customer: every feature sits in a single bin, so it drifts.
    assert json.loads(done.stdout) == {"drift": True, "heavy": []}


# --- results and parameters ---------------------------------------------------


def test_result_renders_a_table_and_json(
    reference: pd.DataFrame, drift_params: DriftParams
) -> None:
    current = bootstrap(reference, 1_000, seed=9)
    current["Contract"] = "Two year"
    result = compare(reference, current, drift_params, sources=("train.csv", "june.csv"))
    text = result.render()
    assert text.startswith("DRIFT: 1 of 19 features drifted (Contract)")
    assert "june.csv" in text.splitlines()[0]
    contract_row = next(line for line in text.splitlines() if line.startswith("Contract "))
    assert contract_row.split()[-1] == "YES"
    data = json.loads(json.dumps(result.to_dict()))
    assert data["drift"] is True
    assert data["drifted_features"] == ["Contract"]
    assert data["thresholds"]["psi_threshold"] == drift_params.psi_threshold
    assert data["thresholds"]["alpha_per_feature"] == pytest.approx(drift_params.alpha / 19)
    assert data["current"] == {"source": "june.csv", "rows": 1_000}
    assert len(data["features"]) == 19


def test_drift_params_come_from_params_yaml(tmp_path: Path) -> None:
    params = load_params(REPO / "params.yaml").drift
    assert 0 < params.psi_threshold < 1
    assert 0 < params.alpha < 1
    text = (REPO / "params.yaml").read_text()
    assert "  psi_threshold:" in text
    typo = tmp_path / "params.yaml"
    typo.write_text(text.replace("  psi_threshold:", "  psi_treshold:", 1))
    with pytest.raises(ParamsError, match=r"drift\.psi_treshold: Extra inputs"):
        load_params(typo)


def test_check_handles_missing_values_in_nullable_string_columns(
    reference: pd.DataFrame,
) -> None:
    frame = reference.head(10).astype({"PhoneService": "string", "MultipleLines": "string"})
    frame.loc[frame.index[0], "MultipleLines"] = pd.NA
    with pytest.raises(DataError, match=r"MultipleLines must be one of .* \(1 row, e\.g\. <NA>\)"):
        check(frame, "batch.csv")
