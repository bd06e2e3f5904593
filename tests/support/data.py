"""Data for tests, derived from the contract and the raw data (never written by hand)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from churn.core.contract import Contract


def sample_frame(raw: pd.DataFrame, contract: Contract, rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` rows of ``raw`` (text columns): first one row for each categorical
    level the data has (so a model fitted on it has seen every level), then a
    seeded sample stratified on the label, in file order."""
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for column in contract.categorical:
        if column.name not in raw:
            continue
        for level in column.levels:
            having = raw.index[raw[column.name].eq(level)]
            if len(having) and not set(having) & set(chosen):
                chosen.append(int(rng.choice(having)))
    rest = raw.drop(index=chosen)
    need = max(0, rows - len(chosen))
    if need and contract.label.name in rest:
        shares = rest[contract.label.name].value_counts(normalize=True)
        for value, share in shares.items():
            pool = rest.index[rest[contract.label.name].eq(str(value))]
            take = min(len(pool), max(2, round(need * share)))
            chosen.extend(int(i) for i in rng.choice(pool, size=take, replace=False))
    return raw.loc[sorted(set(chosen))].reset_index(drop=True)
