"""What every command shares: exit codes, the params option, errors as one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from churn.core.errors import (
    ContractError,
    DataError,
    ModelError,
    PredictionLogError,
    ServiceError,
    TrackingError,
    ValidationFailedError,
)
from churn.core.params import ParamsError

ParamsOption = Annotated[Path, typer.Option("--params", help="Parameters file.", dir_okay=False)]
RunRecordOption = Annotated[
    Path,
    typer.Option(
        help="The MLflow run record train writes (run id, registered version).", dir_okay=False
    ),
]
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


@contextmanager
def errors_as_exit_codes() -> Iterator[None]:
    """Turn the package's expected errors into one line and an exit code."""
    try:
        yield
    except (
        ContractError,
        DataError,
        ParamsError,
        ModelError,
        TrackingError,
        PredictionLogError,
    ) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except (ValidationFailedError, ServiceError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CHECK_FAILED) from None
