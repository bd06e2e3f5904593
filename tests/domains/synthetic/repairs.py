"""Repairs of the raw files' known quirks: none, for generated data.

A real extract usually has some (a flag stored as 0/1, a blank for "not yet
billed"): the example room's repairs.py shows how to fix them before
validation. The file stays, with the same name as in every domain room,
because dvc.yaml lists it among the pipeline's code dependencies.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the service loads the domain too, and has no pandas
    import pandas as pd


def repair(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame as it is: `churn.pipeline.synth.generate` writes clean records."""
    return frame
