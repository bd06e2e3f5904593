"""Repairs of the raw file's known quirks (see data/raw/README.md). THIS FILE IS YOURS.

Applied to the raw text columns before typing and validation, by the
pipeline's `prepare` stage and by every reader of raw-format files. Keep each
repair idempotent (prepared splits are read the same way) and narrow: a
value the repair does not recognise is left for validation to report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the service loads the domain too, and has no pandas
    import pandas as pd


def repair(frame: pd.DataFrame) -> pd.DataFrame:
    """Telco's two quirks, fixed as the data's documentation explains them.

    - ``SeniorCitizen`` 0/1 becomes ``"No"``/``"Yes"`` like every other flag;
    - a blank ``TotalCharges`` of a customer with zero tenure (not yet billed)
      becomes 0; a blank anywhere else stays missing, for validation to flag.
    """
    import pandas as pd

    out = frame.copy()
    if "SeniorCitizen" in out:
        out["SeniorCitizen"] = out["SeniorCitizen"].replace({"0": "No", "1": "Yes"})
    if "TotalCharges" in out and "tenure" in out:
        total = out["TotalCharges"].astype(object)
        blank = total.astype("string").str.strip().eq("").fillna(value=True)
        new_customer = pd.to_numeric(out["tenure"], errors="coerce").eq(0)
        out["TotalCharges"] = total.mask(blank & new_customer, "0")
    return out
