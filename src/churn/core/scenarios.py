"""A population shift any contract can describe, for domain rooms that have no story yet.

The machinery's drift, monitoring and gate tests ask the domain room for a
realistic shift (`churn.core.domain.Scenarios`). A fork that knows its
business writes one (the example's price rise); a room `make adopt` drafted
starts with `ContractShift`: a share of records moves to one level of a
categorical feature and one numeric feature rises by a share of its valid
range. Every record stays valid under the contract: the number stays in its
range (and whole, for an int column), the level is one of the column's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from churn.core.errors import ContractError

if TYPE_CHECKING:  # the service loads the domain too, and has no pandas
    import numpy as np
    import pandas as pd

    from churn.core.contract import Contract

MOVE_SHARE = 0.45
"""At strength 1.0, the share of records (not already there) that move to ``to_level``."""
RISE = (0.2, 0.4)
"""At strength 1.0, the numeric feature rises by a uniform share in this range of its span."""


@dataclass(frozen=True)
class ContractShift:
    """Move records to ``to_level`` of ``categorical`` and raise ``numeric``.

    Either feature may be ``None`` (a contract without numeric or without
    categorical features); a column in a cross-field rule is refused, since
    moving it could break the rule.
    """

    contract: Contract
    numeric: str | None
    categorical: str | None
    to_level: str | None = None

    def __post_init__(self) -> None:
        ruled = {c for r in self.contract.implications for c in (r.when, *r.then)}
        if self.numeric is not None and self.numeric not in self.contract.numeric_names:
            raise ContractError(f"shift: {self.numeric} is not a numeric feature")
        if self.categorical is not None:
            levels = self.contract.levels_by_column.get(self.categorical)
            if levels is None or self.categorical == self.contract.label.name:
                raise ContractError(f"shift: {self.categorical} is not a categorical feature")
            if self.to_level not in levels:
                raise ContractError(
                    f"shift: {self.to_level!r} is not a level of {self.categorical}"
                )
            if self.categorical in ruled:
                raise ContractError(f"shift: {self.categorical} is in a cross-field rule")
        if self.numeric is None and self.categorical is None:
            raise ContractError("shift: names no feature to move")

    @property
    def features(self) -> tuple[str, ...]:
        return tuple(c for c in (self.categorical, self.numeric) if c is not None)

    def __call__(
        self, frame: pd.DataFrame, rng: np.random.Generator, strength: float = 1.0
    ) -> pd.DataFrame:
        """``frame`` after the shift at ``strength`` (0: nothing changes); clean records in,
        clean records out, columns other than the two untouched (blanks stay blank)."""
        import numpy as np
        import pandas as pd

        out = frame.copy()
        if self.categorical is not None and self.to_level is not None:
            column = out[self.categorical]
            moves = column.ne(self.to_level).to_numpy() & (
                rng.random(len(out)) < MOVE_SHARE * strength
            )
            out.loc[moves, self.categorical] = self.to_level
        if self.numeric is not None:
            spec = next(c for c in self.contract.numeric if c.name == self.numeric)
            span = spec.max_value - spec.min_value
            values = out[self.numeric].to_numpy(dtype=np.float64)
            raised = values + strength * span * rng.uniform(*RISE, size=len(out))
            if spec.kind == "int":
                raised = np.floor(raised)
            raised = np.clip(raised, spec.min_value, spec.max_value)
            shifted = pd.Series(raised, index=out.index)
            # Whole numbers as `churn.core.data` types them: nullable integers.
            out[self.numeric] = shifted.astype("Int64") if spec.kind == "int" else shifted
        return out
