"""Data drift: has the population of customers moved away from the training data?

Each contract feature is reduced to counts on a few bins: its levels when it
is categorical, the reference's quantiles (deciles by default) when it is
numeric, with values beyond the reference's range in the end bins. Two
numbers are computed from each pair of count vectors:

- the **population stability index** (PSI), ``sum((q - p) * ln(q / p))`` over
  the bins' shares: the *size* of the change, which does not grow with the
  number of rows;
- the **chi-square test of homogeneity** on the same counts: whether the
  change is more than sampling noise.

A feature has drifted when both say so: PSI at least ``psi_threshold`` and a
p-value below ``alpha`` divided by the number of features (Bonferroni). With
thousands of rows every p-value is tiny, so a p-value alone cries wolf at any
trivial difference; with a few dozen rows the PSI of pure noise is large, so
an effect size alone does. The data has drifted when at least
``min_drifted_features`` features have (`params.yaml`'s ``drift``).
docs/monitoring.md gives the measured false-alarm and detection rates.

The module has two layers so that a live service can use it:

- `ReferenceProfile` (bin edges, levels and reference counts per feature,
  JSON-able) and `compare_counts` need numpy only: a service can load a
  profile written at training time (`ModelDriftProfile`, which `train` saves
  next to the model), count each request's values into its bins
  (`FeatureProfile.bin_index`) and compare the window's counts now and then,
  without pandas (`churn.serving.drift_monitor` does).
- `check`, `build_profile`, `compare` and `main` work on DataFrames and files.
"""

from __future__ import annotations

import html
import json
import math
import re
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from churn import contract
from churn.errors import DataError
from churn.params import DriftParams

if TYPE_CHECKING:
    import pandas as pd

# Added to every bin's count before shares are taken, so an empty bin gives
# a large but finite PSI term instead of log(0). Half a row is Jeffreys' prior;
# it vanishes against thousands of rows.
PSEUDO_COUNT = 0.5
EXAMPLES_SHOWN = 3
# p-values below this are printed as "<1e-12": beyond it the chi-square
# approximation itself says nothing more.
SMALLEST_P_SHOWN = 1e-12

Kind = Literal["numeric", "categorical"]
Counts = npt.NDArray[np.int64]


class FeatureProfile(BaseModel):
    """One feature of the reference: its bins and how many reference rows fall in each.

    Numeric bins are ``(-inf, edges[0]), [edges[0], edges[1]), ..., [edges[-1], inf)``;
    categorical bins are the contract's levels, in contract order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    kind: Kind
    edges: tuple[float, ...] = ()
    levels: tuple[str, ...] = ()
    counts: tuple[int, ...]

    @model_validator(mode="after")
    def _bins_match_counts(self) -> Self:
        bins = len(self.edges) + 1 if self.kind == "numeric" else len(self.levels)
        if len(self.counts) != bins:
            raise ValueError(f"{self.name}: {len(self.counts)} counts for {bins} bins")
        if list(self.edges) != sorted(set(self.edges)):
            raise ValueError(f"{self.name}: bin edges must be strictly increasing")
        return self

    @property
    def labels(self) -> list[str]:
        """A readable name per bin: the level, or the numeric range."""
        if self.kind == "categorical":
            return list(self.levels)
        if not self.edges:
            return ["all values"]
        edges = [f"{e:g}" for e in self.edges]
        inner = [f"[{lo}, {hi})" for lo, hi in pairwise(edges)]
        return [f"<{edges[0]}", *inner, f">={edges[-1]}"]

    def bin_index(self, value: float | str) -> int:
        """The bin of one value (a live service calls this per request; O(log bins)).

        Raises ValueError for a level the contract does not know.
        """
        if self.kind == "numeric":
            return bisect_right(self.edges, float(value))
        try:
            return self.levels.index(str(value))
        except ValueError:
            raise ValueError(f"{self.name}: {value!r} is not one of {list(self.levels)}") from None

    def bin_counts(self, values: Iterable[float | str] | npt.NDArray[Any]) -> Counts:
        """Counts per bin of many values (checked values: see `check`)."""
        return _bin_counts(self.name, self.kind, self.edges, self.levels, values)


def _bin_counts(
    name: str,
    kind: Kind,
    edges: Sequence[float],
    levels: Sequence[str],
    values: Iterable[float | str] | npt.NDArray[Any],
) -> Counts:
    if kind == "numeric":
        array = np.asarray(values, dtype=np.float64)
        index = np.searchsorted(np.asarray(edges, dtype=np.float64), array, side="right")
        bins = len(edges) + 1
    else:
        lookup = {level: i for i, level in enumerate(levels)}
        try:
            index = np.fromiter((lookup[str(v)] for v in values), dtype=np.intp)
        except KeyError as exc:
            raise ValueError(f"{name}: {exc.args[0]!r} is not one of {list(levels)}") from None
        bins = len(levels)
    return np.bincount(index, minlength=bins).astype(np.int64)


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
        header = ["feature", "kind", "test", "PSI", "p-value", "threshold", "drifted"]
        table = [header, *self.rows()]
        widths = [max(len(row[i]) for row in table) for i in range(len(header))]
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


def format_p(p_value: float) -> str:
    return f"<{SMALLEST_P_SHOWN:.0e}" if p_value < SMALLEST_P_SHOWN else f"{p_value:.2g}"


# --- statistics on counts (numpy and the standard library only) -------------


def psi(reference: Sequence[int] | Counts, current: Sequence[int] | Counts) -> float:
    """Population stability index of two count vectors over the same bins (>= 0)."""
    ref = np.asarray(reference, dtype=np.float64) + PSEUDO_COUNT
    cur = np.asarray(current, dtype=np.float64) + PSEUDO_COUNT
    p, q = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def chi2_sf(statistic: float, dof: int) -> float:
    """P(X >= statistic) for X ~ chi-square with ``dof`` degrees of freedom.

    Closed form for integer degrees of freedom (the regularised upper
    incomplete gamma function of a whole or half-integer order), summed in
    log space so that large statistics underflow to 0 instead of overflowing.
    Matches ``scipy.stats.chi2.sf`` (tested) without needing scipy at run time.
    """
    if dof < 1:
        raise ValueError(f"degrees of freedom must be >= 1, not {dof}")
    if statistic <= 0:
        return 1.0
    half = statistic / 2
    log_half = math.log(half)
    if dof % 2 == 0:  # Q(m, y) = e^-y * sum_{i<m} y^i / i!
        terms = [-half + i * log_half - math.lgamma(i + 1) for i in range(dof // 2)]
        head = 0.0
    else:  # Q(m + 1/2, y) = erfc(sqrt y) + e^-y * sum_{i<m} y^(i+1/2) / Gamma(i + 3/2)
        terms = [-half + (i + 0.5) * log_half - math.lgamma(i + 1.5) for i in range(dof // 2)]
        head = math.erfc(math.sqrt(half))
    return min(1.0, head + math.fsum(math.exp(t) for t in terms))


def chi2_homogeneity(
    reference: Sequence[int] | Counts, current: Sequence[int] | Counts
) -> tuple[float, int, float]:
    """Chi-square test that two count vectors come from one distribution.

    Returns (statistic, degrees of freedom, p-value). Bins empty in both are
    dropped; with fewer than two bins left there is nothing to test (p = 1).
    """
    table = np.vstack([np.asarray(reference, np.float64), np.asarray(current, np.float64)])
    table = table[:, table.sum(axis=0) > 0]
    dof = table.shape[1] - 1
    if dof < 1 or (table.sum(axis=1) == 0).any():
        return 0.0, max(dof, 0), 1.0
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, dof, chi2_sf(statistic, dof)


def compare_counts(
    profile: ReferenceProfile,
    current: Mapping[str, Sequence[int] | Counts],
    params: DriftParams,
    *,
    sources: tuple[str, str] = ("reference", "current"),
) -> DriftResult:
    """Compare current counts per feature (same bins as ``profile``) with the reference.

    The pure core of drift detection: no pandas, no files. ``current`` maps
    every feature of the profile to its counts.
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


# --- DataFrames: checking, profiling, counting (pandas) ---------------------


def check(frame: pd.DataFrame, source: str) -> None:
    """Refuse a frame drift cannot be measured on, with one line naming the problem.

    Every feature column must be present (the id and the label may be
    absent; unknown columns are ignored) and every value must satisfy the
    contract: levels, numeric types and ranges, cross-field rules. Expects
    frames from `churn.data.load` (cleaned). `churn validate` gives the full
    report; this is the fast subset drift needs.
    """
    import pandas as pd

    missing = [c for c in contract.feature_names() if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing columns {', '.join(missing)} "
            f"(only {contract.ID_COLUMN} and {contract.LABEL.name} may be absent)"
        )
    if frame.empty:
        raise DataError(f"{source}: no rows to compare")
    problems = []

    def offending(column: str, bad: pd.Series, rule: str) -> None:
        # A missing value compared with a level is NA, not True: the level
        # check has already counted it.
        if bad.dtype != bool:
            bad = bad.fillna(value=False).astype(bool)
        if bad.any():
            examples = ", ".join(repr(v) for v in frame.loc[bad, column].head(EXAMPLES_SHOWN))
            rows = int(bad.sum())
            problems.append(f"{column} {rule} ({rows} row{'s' * (rows > 1)}, e.g. {examples})")

    for numeric in contract.NUMERIC_FEATURES:
        values = pd.to_numeric(frame[numeric.name], errors="coerce").astype("float64")
        bad = values.isna() | (values < numeric.min_value) | (values > numeric.max_value)
        if numeric.kind == "int":
            bad |= values % 1 != 0
        what = "an integer" if numeric.kind == "int" else "a number"
        limits = f"{numeric.min_value:g}..{numeric.max_value:g}"
        offending(numeric.name, bad, f"must be {what} in {limits}")
    for categorical in contract.CATEGORICAL_FEATURES:
        bad = ~frame[categorical.name].isin(categorical.levels)
        offending(categorical.name, bad, f"must be one of {list(categorical.levels)}")
    for rule in contract.IMPLICATIONS:
        when = frame[rule.when].eq(rule.when_value)
        for column in rule.then:
            bad = when != frame[column].eq(rule.then_value)
            offending(
                column,
                bad,
                f"must be {rule.then_value!r} exactly when {rule.when} is {rule.when_value!r}",
            )
    if problems:
        raise DataError(
            f"{source}: values break the data contract: {'; '.join(problems)} "
            "(`churn validate` gives the full report)"
        )


def build_profile(reference: pd.DataFrame, numeric_bins: int) -> ReferenceProfile:
    """Reduce checked reference data to bins and counts, derived from the contract.

    Numeric bin edges are the reference's quantiles at 1/n, 2/n, ... of
    ``numeric_bins`` = n: actual values, duplicates merged, so a feature with
    many tied values gets fewer bins rather than empty ones.
    """
    features = []
    cuts = np.linspace(0, 1, numeric_bins + 1)[1:-1]
    for numeric in contract.NUMERIC_FEATURES:
        values = reference[numeric.name].to_numpy(dtype=np.float64)
        quantiles = np.unique(np.quantile(values, cuts, method="inverted_cdf"))
        edges = tuple(float(e) for e in quantiles[quantiles > values.min()])  # no empty 1st bin
        counts = _bin_counts(numeric.name, "numeric", edges, (), values)
        features.append(
            FeatureProfile(
                name=numeric.name, kind="numeric", edges=edges, counts=tuple(counts.tolist())
            )
        )
    for categorical in contract.CATEGORICAL_FEATURES:
        values = reference[categorical.name].to_numpy(dtype=object)
        counts = _bin_counts(categorical.name, "categorical", (), categorical.levels, values)
        features.append(
            FeatureProfile(
                name=categorical.name,
                kind="categorical",
                levels=categorical.levels,
                counts=tuple(counts.tolist()),
            )
        )
    return ReferenceProfile(rows=len(reference), features=tuple(features))


def model_profile(training: pd.DataFrame, params: DriftParams) -> ModelDriftProfile:
    """The drift profile a model is saved with: its (checked) training data and the rule."""
    check(training, "training data")
    return ModelDriftProfile(params=params, reference=build_profile(training, params.numeric_bins))


def count(profile: ReferenceProfile, frame: pd.DataFrame) -> dict[str, Counts]:
    """Counts per bin of every profiled feature in a checked frame."""
    return {f.name: f.bin_counts(frame[f.name].to_numpy()) for f in profile.features}


def compare(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    params: DriftParams,
    *,
    sources: tuple[str, str] = ("reference", "current"),
) -> DriftResult:
    """Check both frames, profile the reference and compare the current data with it.

    Frames come from `churn.data.load` (or `clean`); the current one may lack
    the id and the label. Raises `DataError` naming the source for bad input.
    """
    check(reference, sources[0])
    check(current, sources[1])
    profile = build_profile(reference, params.numeric_bins)
    return compare_counts(profile, count(profile, current), params, sources=sources)


# --- reports and files -------------------------------------------------------


def render_html(result: DriftResult) -> str:
    """A self-contained HTML report: verdict, table, one bar chart per feature.

    Charts are inline SVG drawn by matplotlib (text kept as text), so the file
    needs no network, no JavaScript and no companion files.
    """
    header = ["feature", "kind", "test", "PSI", "p-value", "threshold", "drifted"]
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for feature, cells in zip(result.features, result.rows(), strict=True):
        row_class = ' class="drifted"' if feature.drifted else ""
        name = f'<a href="#{html.escape(feature.feature)}">{html.escape(cells[0])}</a>'
        rest = "".join(f"<td>{html.escape(c)}</td>" for c in cells[1:])
        body.append(f"<tr{row_class}><td>{name}</td>{rest}</tr>")
    sections = []
    for feature, svg in zip(result.features, _charts(result), strict=True):
        status = "drifted" if feature.drifted else "stable"
        sections.append(
            f'<section id="{html.escape(feature.feature)}"><h3>{html.escape(feature.feature)} '
            f'<span class="{status}">{status}</span></h3>'
            f"<p>PSI {feature.psi:.3f}, chi2 {feature.chi2:.1f} on {feature.dof} degrees of "
            f"freedom, p {html.escape(format_p(feature.p_value))}</p>{svg}</section>"
        )
    verdict_class = "drifted" if result.drift else "stable"
    rules = result.params
    thresholds = html.escape(
        f"PSI >= {rules.psi_threshold:g} and p < {rules.alpha:g} / {len(result.features)} "
        f"features = {result.alpha_per_feature:.1e}; the data has drifted when at least "
        f"{rules.min_drifted_features} feature(s) have; numeric bins at the reference's "
        f"{rules.numeric_bins}-quantiles."
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Data drift report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 62rem; margin: 2rem auto; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
th, td {{ padding: 0.25rem 0.6rem; border-bottom: 1px solid #ddd; text-align: left; }}
tr.drifted td {{ background: #fde8e4; font-weight: 600; }}
.drifted {{ color: #b3261e; }} .stable {{ color: #1e6b35; }}
h1 span, h3 span {{ font-size: 0.8em; }} svg {{ max-width: 100%; height: auto; }}
code {{ font-size: 0.85rem; }}
</style></head><body>
<h1>Data drift: <span class="{verdict_class}">{"DRIFT" if result.drift else "NO DRIFT"}</span></h1>
<p>{html.escape(result.headline())}</p>
<p>A feature has drifted when its population stability index reaches the threshold and
the chi-square test on the same bins is significant after a Bonferroni correction over
the features (params.yaml, <code>drift</code>): {thresholds}</p>
<table><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
<h2>Features</h2>
<p>Share of rows per bin, reference against current. Numeric bins are the reference's
quantiles; values outside the reference's range fall in the end bins.</p>
{chr(10).join(sections)}
</body></html>
"""


def _charts(result: DriftResult) -> list[str]:
    """One grouped bar chart per feature (shares per bin), as inline SVG text."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    charts = []
    with matplotlib.rc_context({"svg.fonttype": "none", "font.size": 9}):
        for number, feature in enumerate(result.features):
            ref = np.asarray(feature.reference_counts, np.float64)
            cur = np.asarray(feature.current_counts, np.float64)
            x = np.arange(len(feature.bins))
            fig, ax = plt.subplots(figsize=(7, 2.4))
            ax.bar(x - 0.2, ref / ref.sum(), width=0.4, color="#9e9e9e", label="reference")
            colour = "#b3261e" if feature.drifted else "#1f6fb2"
            ax.bar(x + 0.2, cur / cur.sum(), width=0.4, color=colour, label="current")
            rotate = 30 if sum(len(b) for b in feature.bins) > 60 else 0
            ax.set_xticks(x, feature.bins, rotation=rotate, ha="right" if rotate else "center")
            ax.set_ylabel("share of rows")
            ax.spines[["top", "right"]].set_visible(False)
            ax.legend(frameon=False, fontsize=8)
            fig.tight_layout()
            buffer = io.StringIO()
            fig.savefig(buffer, format="svg", metadata={"Date": None})
            plt.close(fig)
            svg = buffer.getvalue()
            charts.append(_inline_svg(svg, prefix=f"chart{number}-"))
    return charts


def _inline_svg(svg: str, prefix: str) -> str:
    """An SVG file's text made fit to sit beside others in one HTML page.

    Drops the XML prolog and the metadata block, and prefixes every id (and
    every reference to one): matplotlib names its groups ``figure_1``,
    ``axes_1``... in every file, and ids must be unique in a page.
    """
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    svg = re.sub(r'id="([^"]+)"', rf'id="{prefix}\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{prefix}\1)", svg)
    return re.sub(r'href="#([^"]+)"', rf'href="#{prefix}\1"', svg)


def load_checked(path: Path) -> pd.DataFrame:
    """Read and clean a CSV like the pipeline does, then `check` it (DataError if bad)."""
    from churn.data import load

    frame = load([path])
    check(frame, str(path))
    return frame


def main(
    reference_path: Path,
    current_path: Path,
    params: DriftParams,
    *,
    report: Path | None = None,
    json_out: Path | None = None,
) -> DriftResult:
    """Compare two CSV files and write the requested reports; returns the result."""
    reference, current = load_checked(reference_path), load_checked(current_path)
    profile = build_profile(reference, params.numeric_bins)
    result = compare_counts(
        profile, count(profile, current), params, sources=(str(reference_path), str(current_path))
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(render_html(result))
    return result
