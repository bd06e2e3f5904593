"""The gate a new table starts with: what the default model reaches on it, and how much that moves.

`measure` cross-validates the configured model (``params.yaml``'s ``train``)
on the whole table, with the same metrics `churn evaluate` writes, and sets
each gate rule of ``params.yaml`` from the folds: the limit sits
`LIMIT_STDS` standard deviations on the bad side of the mean (a model that
matches today's passes with room for the split's luck), and the allowed
regression against main is one standard deviation, at least
`MIN_REGRESSION`. Rounded outwards to three decimals, like the template's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from churn.core.contract import Contract
from churn.core.data import features, label
from churn.core.params import MetricGate, Params

LIMIT_STDS = 3.0
MIN_REGRESSION = 0.005


@dataclass(frozen=True)
class Baseline:
    rows: int
    folds: int
    metrics: tuple[str, ...]
    means: dict[str, float]
    stds: dict[str, float]
    rules: dict[str, MetricGate]
    limit_stds: float = LIMIT_STDS
    min_regression: float = MIN_REGRESSION


def measure(frame: pd.DataFrame, contract: Contract, params: Params) -> Baseline:
    """Cross-validated metrics of ``params.train``'s model on ``frame`` (clean, typed), and
    the gate rules for each metric of ``params.gate``."""
    from sklearn.model_selection import StratifiedKFold

    from churn.pipeline.evaluate import compute_metrics
    from churn.pipeline.model import build_pipeline

    train = params.train
    x, y = features(frame, contract), label(frame, contract)
    folds = StratifiedKFold(n_splits=train.cv_folds, shuffle=True, random_state=train.seed)
    scores: dict[str, list[float]] = {name: [] for name in params.gate}
    for fit_rows, test_rows in folds.split(x, y):
        model = build_pipeline(train, contract).fit(x.iloc[fit_rows], y[fit_rows])
        score = model.predict_proba(x.iloc[test_rows])[:, 1]
        values = compute_metrics(y[test_rows], score, train.threshold)
        for name, folds_so_far in scores.items():
            folds_so_far.append(values[name])
    means = {name: float(np.mean(v)) for name, v in scores.items()}
    stds = {name: float(np.std(v)) for name, v in scores.items()}
    rules = {
        name: gate_rule(means[name], stds[name], params.gate[name].higher_is_better)
        for name in scores
    }
    return Baseline(len(frame), train.cv_folds, tuple(scores), means, stds, rules)


def gate_rule(mean: float, std: float, higher_is_better: bool) -> MetricGate:
    """The rule for one metric measured at ``mean`` +- ``std`` across folds."""
    if higher_is_better:
        limit = math.floor((mean - LIMIT_STDS * std) * 1000) / 1000
    else:
        limit = math.ceil((mean + LIMIT_STDS * std) * 1000) / 1000
    regression = max(math.ceil(std * 1000) / 1000, MIN_REGRESSION)
    return MetricGate(limit=limit, max_regression=regression, higher_is_better=higher_is_better)
