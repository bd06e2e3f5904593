"""Current counts against the reference profile, feature by feature, and the verdict.

`compare_counts` is the pure core (numpy only, no frames, no files): the
rule of ``churn drift``, of ``churn monitor`` and of the service's live
drift metrics. `compare` is the same from two checked frames.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from churn.core.errors import DataError
from churn.monitoring.drift.checks import check
from churn.monitoring.drift.profile import ReferenceProfile, build_profile, count
from churn.monitoring.drift.stats import (
    PSEUDO_COUNT,
    Counts,
    Kind,
    chi2_homogeneity,
    format_p,
    psi,
)

if TYPE_CHECKING:
    import pandas as pd

    from churn.core.contract import Contract
    from churn.core.params import DriftParams

TABLE_HEADER = ("feature", "kind", "test", "PSI", "p-value", "threshold", "drifted")


@dataclass(frozen=True)
class FeatureDrift:
    """The comparison of one feature: counts, effect size, test and verdict."""

    feature: str
    kind: Kind
    bins: tuple[str, ...]
    reference_counts: tuple[int, ...]
    current_counts: tuple[int, ...]
    psi: float
    chi2: float
    dof: int
    p_value: float
    drifted: bool

    @property
    def test(self) -> str:
        what = "levels" if self.kind == "categorical" else "quantile bins"
        return f"PSI + chi2, {len(self.bins)} {what}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "feature": self.feature,
            "kind": self.kind,
            "test": self.test,
            "psi": self.psi,
            "chi2": self.chi2,
            "dof": self.dof,
            "p_value": self.p_value,
            "drifted": self.drifted,
            "bins": list(self.bins),
            "reference_counts": list(self.reference_counts),
            "current_counts": list(self.current_counts),
        }


@dataclass(frozen=True)
class DriftResult:
    features: tuple[FeatureDrift, ...]
    reference_rows: int
    current_rows: int
    params: DriftParams
    sources: tuple[str, str] = ("reference", "current")

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]

    @property
    def drift(self) -> bool:
        """The verdict: at least ``min_drifted_features`` features drifted."""
        return len(self.drifted_features) >= self.params.min_drifted_features

    @property
    def alpha_per_feature(self) -> float:
        return self.params.alpha / max(len(self.features), 1)

    @property
    def threshold(self) -> str:
        return f"PSI>={self.params.psi_threshold:g} and p<{self.alpha_per_feature:.1e}"

    def headline(self) -> str:
        verdict = "DRIFT" if self.drift else "NO DRIFT"
        drifted = self.drifted_features
        which = f" ({', '.join(drifted)})" if drifted else ""
        return (
            f"{verdict}: {len(drifted)} of {len(self.features)} features drifted{which}; "
            f"rule: at least {self.params.min_drifted_features}. "
            f"Reference {self.reference_rows} rows ({self.sources[0]}), "
            f"current {self.current_rows} rows ({self.sources[1]})."
        )

    def rows(self) -> list[list[str]]:
        """The per-feature table, as text cells (for the terminal and the HTML report)."""
        return [
            [
                f.feature,
                f.kind,
                f.test,
                f"{f.psi:.3f}",
                format_p(f.p_value),
                self.threshold,
                "YES" if f.drifted else "no",
            ]
            for f in self.features
        ]

    def render(self) -> str:
        table = [list(TABLE_HEADER), *self.rows()]
        widths = [max(len(row[i]) for row in table) for i in range(len(TABLE_HEADER))]
        lines = [self.headline(), ""]
        lines += [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "drifted_features": self.drifted_features,
            "reference": {"source": self.sources[0], "rows": self.reference_rows},
            "current": {"source": self.sources[1], "rows": self.current_rows},
            "thresholds": {
                **self.params.model_dump(),
                "alpha_per_feature": self.alpha_per_feature,
                "pseudo_count": PSEUDO_COUNT,
            },
            "features": [f.to_dict() for f in self.features],
        }


def compare_counts(
    profile: ReferenceProfile,
    current: Mapping[str, Sequence[int] | Counts],
    params: DriftParams,
    *,
    sources: tuple[str, str] = ("reference", "current"),
) -> DriftResult:
    """Compare current counts per feature (same bins as ``profile``) with the reference.

    The pure core of drift detection: no pandas, no files. ``current`` maps
    every feature of the profile to its counts. A feature drifts when its PSI
    reaches ``psi_threshold`` and its chi-square p-value is below ``alpha``
    over the number of features (Bonferroni).
    """
    alpha_per_feature = params.alpha / len(profile.features)
    results = []
    current_rows = None
    for feature in profile.features:
        counts = tuple(int(c) for c in current[feature.name])
        if len(counts) != len(feature.counts):
            raise ValueError(
                f"{feature.name}: {len(counts)} current counts for {len(feature.counts)} bins"
            )
        current_rows = sum(counts) if current_rows is None else current_rows
        if sum(counts) != current_rows:
            raise ValueError(f"{feature.name}: counts add up to {sum(counts)}, not {current_rows}")
        effect = psi(feature.counts, counts)
        statistic, dof, p_value = chi2_homogeneity(feature.counts, counts)
        results.append(
            FeatureDrift(
                feature=feature.name,
                kind=feature.kind,
                bins=tuple(feature.labels),
                reference_counts=feature.counts,
                current_counts=counts,
                psi=effect,
                chi2=statistic,
                dof=dof,
                p_value=p_value,
                drifted=effect >= params.psi_threshold and p_value < alpha_per_feature,
            )
        )
    if not current_rows:
        raise DataError(f"{sources[1]}: no rows to compare")
    return DriftResult(tuple(results), profile.rows, current_rows, params, sources)


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    params: DriftParams,
    *,
    contract: Contract,
    sources: tuple[str, str] = ("reference", "current"),
) -> DriftResult:
    """Check both frames, profile the reference and compare the current data with it.

    Frames come from `churn.core.data.load` (or `clean`); the current one may lack
    the id and the label. Raises `DataError` naming the source for bad input.
    """
    check(reference, sources[0], contract=contract)
    check(current, sources[1], contract=contract)
    profile = build_profile(reference, params.numeric_bins, contract=contract)
    return compare_counts(profile, count(profile, current), params, sources=sources)
