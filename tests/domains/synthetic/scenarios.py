"""The synthetic loan domain's scenarios, for the machinery's tests and benchmarks.

A broker campaign: brokers win applications that used to come through a
branch or online, and the loans they arrange are larger. It moves one
categorical feature (``channel``) and one numeric feature (``amount``) and
keeps every record valid: the amount stays in the contract's range and in
cents, and no cross-field rule involves either column.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the service loads the domain too, and has no pandas
    import numpy as np
    import pandas as pd

BROKER = "broker"
# strength 1.0: the shift the drift check must catch.
MOVE_SHARE = 0.45  # of branch and online applications move to brokers
RAISE = (0.40, 0.80)  # brokered amounts grow by a uniform factor in this range
AMOUNT_MAX = 60000.0  # the contract's maximum for `amount`

SHIFTED_FEATURES: tuple[str, ...] = ("channel", "amount")

# Heavy regularisation: a model far below any gate set from the default one.
WEAKER_TRAIN: dict[str, Any] = {"logistic_regression": {"C": 0.0005}}

# Words of this domain that the machinery must never use (the fork test greps for them).
VOCABULARY: tuple[str, ...] = ("borrower", "defaulted", "collateral")


def shift(frame: pd.DataFrame, rng: np.random.Generator, strength: float = 1.0) -> pd.DataFrame:
    """``frame`` after a broker campaign of ``strength`` (0: nothing changes).

    Clean (contract) format in, the same out; columns other than ``channel``
    and ``amount`` are untouched.
    """
    import numpy as np

    out = frame.copy()
    moves = out["channel"].ne(BROKER).to_numpy() & (rng.random(len(out)) < MOVE_SHARE * strength)
    out.loc[moves, "channel"] = BROKER
    factor = 1 + strength * rng.uniform(*RAISE, size=len(out))
    amount = out["amount"].to_numpy(dtype=np.float64)
    brokered = out["channel"].eq(BROKER).to_numpy()
    out["amount"] = np.where(brokered, np.minimum(amount * factor, AMOUNT_MAX), amount).round(2)
    return out
