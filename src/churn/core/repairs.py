"""Repairs any table may need, for domain rooms to call (`make adopt` drafts rooms that do).

A real extract often writes text around its values (``" 42 "``), spells a
blank as a token (``"?"``, ``"NA"``) and carries columns the model must not
see (free text, a second id). `tidy` fixes all three the same way every
time: the adopted room's ``repairs.py`` names the tokens and columns of its
table, so a person can read and change them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the service loads the domain too, and has no pandas
    import pandas as pd


def tidy(
    frame: pd.DataFrame, *, blanks: Iterable[str] = (), drop: Iterable[str] = ()
) -> pd.DataFrame:
    """``frame`` with text cells stripped, ``blanks`` tokens and empty cells made
    missing, and the ``drop`` columns removed (those present).

    Idempotent, and it leaves ``frame`` alone.
    """
    import numpy as np
    from pandas.api.types import is_object_dtype, is_string_dtype

    out = frame.drop(columns=[c for c in drop if c in frame.columns])
    tokens = {"", *blanks}
    for column in out.columns:
        values = out[column]
        if not (is_object_dtype(values) or is_string_dtype(values)):
            continue
        text = values.astype(object)
        stripped = text.map(lambda v: v.strip() if isinstance(v, str) else v)
        out[column] = stripped.mask(stripped.isin(tokens), np.nan)
    return out
