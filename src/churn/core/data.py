"""Reading records from CSV: the domain's repairs, then a type for each contract column.

Files are read with every column as text, then each contract column gets its
type. A value that does not parse is *kept as written* (the column becomes an
object column) rather than turned into a null, so that validation can name
the offending value instead of reporting a mysterious missing one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from churn.core.contract import MISSING_LEVEL
from churn.core.errors import DataError, first_line

if TYPE_CHECKING:
    from churn.core.contract import Contract
    from churn.core.domain import Domain


def read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV in the raw (or prepared) format, every column as text.

    Raises `DataError` with a one-line reason when the file is not a readable,
    non-empty CSV; a header-only file is a readable table with zero rows.
    """
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, not a CSV file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty (not even a header row)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        reason = first_line(exc)
        raise DataError(f"{path}: not a readable CSV file ({reason})") from None


def _to_number(text: pd.Series, kind: str) -> pd.Series:
    """Parse a text column into numbers, keeping unparseable values as written."""
    parsed = pd.to_numeric(text, errors="coerce")
    invalid = parsed.isna() & text.notna()
    if kind == "int":
        invalid |= parsed.notna() & (parsed % 1 != 0)
    if not invalid.any():
        return parsed.astype("Int64" if kind == "int" else "float64")
    cast = int if kind == "int" else float
    mixed = text.astype(object).copy()
    good = parsed.notna() & ~invalid
    mixed[good] = [cast(v) for v in parsed[good]]
    mixed[invalid] = [parsed_or_text(v) for v in text[invalid]]
    return mixed


def parsed_or_text(value: str) -> float | str:
    """A non-integral number stays a number (so the report shows 1.5, not '1.5')."""
    try:
        return float(value)
    except ValueError:
        return value


def _blank(text: pd.Series) -> pd.Series:
    """Which cells are empty or whitespace only (missing cells are not blank text)."""
    return text.astype("string").str.strip().eq("").fillna(value=False)


def clean(frame: pd.DataFrame, domain: Domain) -> pd.DataFrame:
    """Apply the domain's repairs, type each numeric column, and mark blanks missing.

    A cell that is blank (empty or whitespace), in any contract column, is
    missing (NaN); validation judges whether the column may be. A numeric
    cell that does not parse is kept as written for validation to name.
    Idempotent, so it applies equally to the raw file and to prepared splits
    (`prepare` writes a missing value as an empty field, read back as NaN).
    Columns the contract does not know, and contract columns that are
    absent, are left for validation to report.
    """
    contract = domain.contract
    out = domain.repair(frame)
    if out is frame:
        out = frame.copy()
    for column in contract.numeric:
        if column.name not in out:
            continue
        text = out[column.name].astype(object)
        out[column.name] = _to_number(text.mask(_blank(text), np.nan), column.kind)
    for name in (contract.id.name, *contract.categorical_names, contract.label.name):
        if name in out and (blank := _blank(out[name])).any():
            out[name] = out[name].mask(blank, np.nan)
    return out


def load(paths: list[Path], domain: Domain) -> pd.DataFrame:
    """Read and clean one or more CSV files into one frame (rows in file order)."""
    frames = [clean(read_csv(p), domain) for p in paths]
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True)


def features(frame: pd.DataFrame, contract: Contract) -> pd.DataFrame:
    """The model's input columns in contract order, numbers as float64.

    A missing number stays NaN (the pipeline imputes it); a missing level
    becomes `MISSING_LEVEL`, the spelling the ONNX export receives too.
    Call it on validated data only: it assumes every value already parsed.
    """
    out = frame[list(contract.feature_names)].copy()
    numeric = list(contract.numeric_names)
    out[numeric] = out[numeric].astype("float64")
    for name in contract.categorical_names:
        if (missing := out[name].isna()).any():  # object: an all-blank column is float
            out[name] = out[name].astype(object).mask(missing, MISSING_LEVEL)
    return out


def label(frame: pd.DataFrame, contract: Contract) -> np.ndarray:
    """The label as 0/1 integers (1 = the contract's positive level)."""
    return frame[contract.label.name].eq(contract.label.positive).to_numpy(dtype=np.int64)
