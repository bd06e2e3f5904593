"""The example's scenarios, for the machinery's tests and benchmarks. THIS FILE IS YOURS.

The machinery's drift, monitoring and gate tests run on whatever domain is
loaded; they ask the domain for a realistic change in its population and
for a model that is clearly worse. Write yours for your data: a shift that
your business can actually see (a price change, a new market, a marketing
campaign) and that keeps every record valid under the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the service loads the domain too, and has no pandas
    import numpy as np
    import pandas as pd

MONTH_TO_MONTH = "Month-to-month"
MAX_MONTHLY_CHARGE = 200.0  # contract.yaml's MonthlyCharges max_value


@dataclass(frozen=True)
class PriceRise:
    """A price rise: ``move_share`` of one- and two-year customers go month-to-month,
    and every month-to-month customer's charge rises by a uniform factor in ``rise``."""

    name: str
    move_share: float
    rise: tuple[float, float]


# strength 1.0: the shift the drift check must catch (benchmarked in bench/drift.py).
STRONG = PriceRise("strong", 0.40, (0.10, 0.20))
SHIFTED_FEATURES: tuple[str, ...] = ("Contract", "MonthlyCharges")

# Heavy regularisation: a model far below the gate in params.yaml.
WEAKER_TRAIN: dict[str, Any] = {"logistic_regression": {"C": 0.0005}}

# Words of this domain that the machinery must never use (the fork test greps for them).
VOCABULARY: tuple[str, ...] = ("customer", "churned", "telecom", "telco")


def price_rise(frame: pd.DataFrame, rise: PriceRise, rng: np.random.Generator) -> pd.DataFrame:
    """``frame`` after the price rise; clean (contract) format in, the same out.

    Tenure and the cross-field rules are untouched; ``TotalCharges`` gains one
    month at the new price (customers not yet billed stay at 0).
    """
    import numpy as np

    out = frame.copy()
    on_contract = out["Contract"].ne(MONTH_TO_MONTH).to_numpy()
    moves = on_contract & (rng.random(len(out)) < rise.move_share)
    out.loc[moves, "Contract"] = MONTH_TO_MONTH
    monthly = out["MonthlyCharges"].to_numpy(dtype=np.float64)
    factor = 1 + rng.uniform(*rise.rise, size=len(out))
    raised = np.where(out["Contract"].eq(MONTH_TO_MONTH), monthly * factor, monthly).round(2)
    raised = np.minimum(raised, MAX_MONTHLY_CHARGE)  # stays within the contract
    tenure = out["tenure"].to_numpy(dtype=np.float64)
    total = out["TotalCharges"].to_numpy(dtype=np.float64)
    out["MonthlyCharges"] = raised
    out["TotalCharges"] = np.where(tenure > 0, (total + raised - monthly).round(2), 0.0)
    return out


def shift(frame: pd.DataFrame, rng: np.random.Generator, strength: float = 1.0) -> pd.DataFrame:
    """The price rise at ``strength`` times the strong one (0: nothing changes)."""
    scaled = PriceRise(
        f"{strength:g} x strong",
        min(1.0, STRONG.move_share * strength),
        (STRONG.rise[0] * strength, STRONG.rise[1] * strength),
    )
    return price_rise(frame, scaled, rng)
