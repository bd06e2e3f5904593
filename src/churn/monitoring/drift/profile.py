"""The reference reduced to bins and counts per feature: small, JSON-able, enough to test drift.

`ReferenceProfile` (and `ModelDriftProfile`, which `train` saves next to the
model) need numpy and pydantic only: a service loads one, counts each
request's values into its bins (`FeatureProfile.bin_index`) and compares.
`build_profile`, `count` and `model_profile` make and fill profiles from
frames; they take the data contract as an argument and import no pandas.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from churn.core.params import DriftParams
from churn.monitoring.drift.checks import check
from churn.monitoring.drift.stats import Counts, Kind, bin_counts, is_missing

if TYPE_CHECKING:
    import pandas as pd

    from churn.core.contract import Contract

MISSING_BIN = "missing"
"""The label of a nullable column's last bin."""


class FeatureProfile(BaseModel):
    """One feature of the reference: its bins and how many reference rows fall in each.

    Numeric bins are ``(-inf, edges[0]), [edges[0], edges[1]), ..., [edges[-1], inf)``;
    categorical bins are the contract's levels, in contract order. A column
    the contract lets be blank (``missing``) has one more bin, last, for its
    missing values: a jump in the share of blanks is drift like any other.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: Kind
    edges: tuple[float, ...] = ()
    levels: tuple[str, ...] = ()
    # Written only when true, so the profile of a column that is never blank
    # reads as it did before missing values existed.
    missing: bool = Field(default=False, exclude_if=lambda missing: not missing)
    counts: tuple[int, ...]

    @model_validator(mode="after")
    def _bins_match_counts(self) -> Self:
        bins = len(self.edges) + 1 if self.kind == "numeric" else len(self.levels)
        bins += self.missing
        if len(self.counts) != bins:
            raise ValueError(f"{self.name}: {len(self.counts)} counts for {bins} bins")
        if list(self.edges) != sorted(set(self.edges)):
            raise ValueError(f"{self.name}: bin edges must be strictly increasing")
        return self

    @property
    def labels(self) -> list[str]:
        """A readable name per bin: the level, or the numeric range."""
        missing = [MISSING_BIN] if self.missing else []
        if self.kind == "categorical":
            return [*self.levels, *missing]
        if not self.edges:
            return ["all values", *missing]
        edges = [f"{e:g}" for e in self.edges]
        inner = [f"[{lo}, {hi})" for lo, hi in pairwise(edges)]
        return [f"<{edges[0]}", *inner, f">={edges[-1]}", *missing]

    def bin_index(self, value: float | str | None) -> int:
        """The bin of one value (a live service calls this per request; O(log bins)).

        Raises ValueError for a level the contract does not know, or a
        missing value of a column that may not be missing.
        """
        if value is None or is_missing(value):
            if not self.missing:
                raise ValueError(f"{self.name}: a missing value, and the column may not be missing")
            return len(self.counts) - 1
        if self.kind == "numeric":
            return bisect_right(self.edges, float(value))
        try:
            return self.levels.index(str(value))
        except ValueError:
            raise ValueError(f"{self.name}: {value!r} is not one of {list(self.levels)}") from None

    def bin_counts(self, values: Iterable[float | str | None] | npt.NDArray[Any]) -> Counts:
        """Counts per bin of many values (checked values: see `check`)."""
        return bin_counts(
            self.name, self.kind, self.edges, self.levels, values, missing=self.missing
        )


class ReferenceProfile(BaseModel):
    """The reference data reduced to counts: small, JSON-able, enough to test drift."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rows: int
    features: tuple[FeatureProfile, ...] = Field(min_length=1)


class ModelDriftProfile(BaseModel):
    """What a model ships for live drift monitoring (``drift_profile.json`` next to it).

    The training split reduced to counts, and the rule to judge traffic by
    (``params.yaml``'s ``drift`` section when the model was trained), so a
    service needs neither the training data nor ``params.yaml``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    params: DriftParams
    reference: ReferenceProfile


# --- from frames (checked with `check`; pandas is the caller's) -------------


def build_profile(
    reference: pd.DataFrame, numeric_bins: int, *, contract: Contract
) -> ReferenceProfile:
    """Reduce checked reference data to bins and counts, one feature per contract feature.

    Numeric bin edges are the reference's quantiles at 1/n, 2/n, ... of
    ``numeric_bins`` = n: actual values, duplicates merged, so a feature with
    many tied values gets fewer bins rather than empty ones. Categorical bins
    are the contract's levels, in its order. A nullable column gets a last
    bin for its missing values; its edges come from the values present.
    """
    features = []
    cuts = np.linspace(0, 1, numeric_bins + 1)[1:-1]
    for numeric in contract.numeric:
        values = reference[numeric.name].to_numpy(dtype=np.float64, na_value=np.nan)
        present = values[~np.isnan(values)]
        if len(present):
            quantiles = np.unique(np.quantile(present, cuts, method="inverted_cdf"))
            edges = tuple(float(e) for e in quantiles[quantiles > present.min()])  # no empty 1st
        else:
            edges = ()
        counts = bin_counts(numeric.name, "numeric", edges, (), values, missing=numeric.nullable)
        features.append(
            FeatureProfile(
                name=numeric.name,
                kind="numeric",
                edges=edges,
                missing=numeric.nullable,
                counts=tuple(counts.tolist()),
            )
        )
    for categorical in contract.categorical:
        values = reference[categorical.name].to_numpy(dtype=object)
        counts = bin_counts(
            categorical.name,
            "categorical",
            (),
            categorical.levels,
            values,
            missing=categorical.nullable,
        )
        features.append(
            FeatureProfile(
                name=categorical.name,
                kind="categorical",
                levels=categorical.levels,
                missing=categorical.nullable,
                counts=tuple(counts.tolist()),
            )
        )
    return ReferenceProfile(rows=len(reference), features=tuple(features))


def count(profile: ReferenceProfile, frame: pd.DataFrame) -> dict[str, Counts]:
    """Counts per bin of every profiled feature in a checked frame."""
    return {
        f.name: f.bin_counts(
            frame[f.name].to_numpy(dtype=np.float64, na_value=np.nan)
            if f.kind == "numeric"
            else frame[f.name].to_numpy(dtype=object)
        )
        for f in profile.features
    }


def model_profile(
    training: pd.DataFrame, params: DriftParams, *, contract: Contract
) -> ModelDriftProfile:
    """The drift profile a model is saved with: its (checked) training data and the rule."""
    check(training, "training data", contract=contract)
    reference = build_profile(training, params.numeric_bins, contract=contract)
    return ModelDriftProfile(params=params, reference=reference)
