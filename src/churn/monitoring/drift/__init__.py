"""Data drift: has the population of records moved away from the training data?

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

The package is split along what each part needs, so that a live service can
use the pure core without pandas:

- `stats`: bins, PSI, the chi-square test, on count vectors (numpy);
- `profile`: the reference as bins and counts (`ReferenceProfile`, and
  `ModelDriftProfile`, which `train` saves next to the model), built from a
  frame and the data contract;
- `result`: `compare_counts` (the rule, on counts) and `DriftResult`;
  `compare` does the same from two frames;
- `checks`: the data contract's fast checks on a frame (pandas);
- `report`: the HTML report (matplotlib) and ``churn drift``'s file I/O.

Nothing here imports pandas or matplotlib at import time, and nothing names
a column: the contract arrives as an argument.
"""

from churn.monitoring.drift.checks import check, load_checked
from churn.monitoring.drift.profile import (
    FeatureProfile,
    ModelDriftProfile,
    ReferenceProfile,
    build_profile,
    count,
    model_profile,
)
from churn.monitoring.drift.report import main, render_html
from churn.monitoring.drift.result import DriftResult, FeatureDrift, compare, compare_counts
from churn.monitoring.drift.stats import (
    PSEUDO_COUNT,
    Counts,
    Kind,
    bin_counts,
    chi2_homogeneity,
    chi2_sf,
    format_p,
    psi,
)

__all__ = [
    "PSEUDO_COUNT",
    "Counts",
    "DriftResult",
    "FeatureDrift",
    "FeatureProfile",
    "Kind",
    "ModelDriftProfile",
    "ReferenceProfile",
    "bin_counts",
    "build_profile",
    "check",
    "chi2_homogeneity",
    "chi2_sf",
    "compare",
    "compare_counts",
    "count",
    "format_p",
    "load_checked",
    "main",
    "model_profile",
    "psi",
    "render_html",
]
