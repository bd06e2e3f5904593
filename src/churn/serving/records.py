"""Rows of a data frame as API records: what a client of the service sends.

The one place that turns the pipeline's frames (cleaned, contract-typed)
into request bodies, for the load test, the benchmarks and the tests. The
service itself never imports this module, nor pandas: a frame only comes in
as an argument.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from churn.core.contract import api_name
from churn.monitoring.drift.stats import is_missing

if TYPE_CHECKING:
    import pandas as pd

    from churn.core.contract import Contract

ApiRecord = dict[str, Any]
"""One record as a JSON body: the API's snake_case field names, plain Python values."""


def to_api_records(frame: pd.DataFrame, contract: Contract) -> list[ApiRecord]:
    """Each row of ``frame`` as an API record: its features and, if the frame has it, its id.

    Values become the plain Python types the API's strict validation wants:
    an ``int`` feature stored as 12.0 (pandas widens integer columns with
    gaps to floats) is sent as 12, a float as a float, a level as a string,
    and a blank in a column the contract lets be blank as null.
    ``frame`` must hold valid records (`churn.core.data.clean`, then validated).
    """
    columns: list[str] = []
    casts: list[Callable[[Any], Any]] = []
    if contract.id.name in frame.columns:
        columns.append(contract.id.name)
        casts.append(str)
    for number in contract.numeric:
        columns.append(number.name)
        cast: Callable[[Any], Any] = int if number.kind == "int" else float
        casts.append(_or_null(cast) if number.nullable else cast)
    for category in contract.categorical:
        columns.append(category.name)
        casts.append(_or_null(str) if category.nullable else str)
    names = [api_name(column) for column in columns]
    return [
        {name: cast(value) for name, cast, value in zip(names, casts, row, strict=True)}
        for row in frame[columns].itertuples(index=False, name=None)
    ]


def _or_null(cast: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``cast``, except that a missing value (None, NaN, pandas' NA) becomes None."""

    def convert(value: Any) -> Any:
        return None if is_missing(value) else cast(value)

    return convert
