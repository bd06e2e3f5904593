"""Is a frame fit to measure drift on? The data contract's fast checks, one line on failure.

`churn validate` (Great Expectations) gives the full report; drift needs
only to refuse, quickly and readably, data whose bins would mean nothing:
missing feature columns, unknown levels, non-numbers, values out of range,
broken cross-field rules. pandas is imported inside the functions, so the
package stays importable where only numpy is installed (the service).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from churn.core.errors import DataError

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from churn.core.contract import Contract
    from churn.core.domain import Domain

EXAMPLES_SHOWN = 3


def check(frame: pd.DataFrame, source: str, *, contract: Contract) -> None:
    """Refuse a frame drift cannot be measured on, with one line naming the problem.

    Every feature column must be present (the id and the label may be
    absent; unknown columns are ignored) and every value must satisfy the
    contract: levels, numeric types and ranges, cross-field rules. A blank
    is allowed in a column the contract lets be missing (whatever the share:
    it has its own bin, so a jump in blanks is drift, not an error), and a
    rule does not apply to a record with a blank in it. Expects frames from
    `churn.core.data.load` (cleaned).
    """
    import pandas as pd

    missing = [c for c in contract.feature_names if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing columns {', '.join(missing)} "
            f"(only {contract.id.name} and {contract.label.name} may be absent)"
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

    for numeric in contract.numeric:
        values = pd.to_numeric(frame[numeric.name], errors="coerce").astype("float64")
        bad = values.isna() | (values < numeric.min_value) | (values > numeric.max_value)
        if numeric.nullable:  # a blank is counted in its own bin; text that is no number is not
            bad &= frame[numeric.name].notna()
        if numeric.kind == "int":
            bad |= values % 1 != 0
        what = "an integer" if numeric.kind == "int" else "a number"
        limits = f"{numeric.min_value:g}..{numeric.max_value:g}"
        offending(numeric.name, bad, f"must be {what} in {limits}")
    for categorical in contract.categorical:
        bad = ~frame[categorical.name].isin(categorical.levels)
        if categorical.nullable:
            bad &= frame[categorical.name].notna()
        offending(categorical.name, bad, f"must be one of {list(categorical.levels)}")
    for rule in contract.implications:
        when = frame[rule.when].eq(rule.when_value)
        for column in rule.then:
            then = frame[column].eq(rule.then_value)
            bad = when & ~then if rule.one_way else when != then
            bad &= frame[rule.when].notna() & frame[column].notna()  # blank: not applicable
            offending(column, bad, rule.requirement)
    if problems:
        raise DataError(
            f"{source}: values break the data contract: {'; '.join(problems)} "
            "(`churn validate` gives the full report)"
        )


def load_checked(path: Path, *, domain: Domain) -> pd.DataFrame:
    """Read and clean a CSV like the pipeline does, then `check` it (DataError if bad)."""
    from churn.core.data import load

    frame = load([path], domain)
    check(frame, str(path), contract=domain.contract)
    return frame
