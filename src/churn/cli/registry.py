"""The MLflow registry: promote a version to champion, roll the alias back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from churn.cli.common import EXIT_CHECK_FAILED, EXIT_USAGE, ParamsOption, errors_as_exit_codes
from churn.core.params import load_params

app = typer.Typer()


@app.command()
def promote(
    version: Annotated[
        int | None, typer.Option(help="Version to promote (default: the challenger).", min=1)
    ] = None,
    run_file: Annotated[
        Path | None,
        typer.Option(
            help="Promote the version this file records (reports/run/mlflow_run.json): "
            "the model this checkout built.",
            dir_okay=False,
        ),
    ] = None,
    params_file: ParamsOption = Path("params.yaml"),
) -> None:
    """Move the registry's `champion` alias to the challenger if it passes the gate.

    The candidate's held-out metrics must meet params.yaml's gate: its limits,
    and no regression beyond max_regression against the current champion (the
    limits alone for a first champion). Exit 1 when refused, with the numbers;
    nothing to promote (no challenger) is not an error. See docs/mlflow.md.
    """
    from churn.core.artifacts import RunRecord
    from churn.registry import champion as registry
    from churn.registry import tracking

    if version is not None and run_file is not None:
        typer.echo("error: give --version or --run-file, not both", err=True)
        raise typer.Exit(EXIT_USAGE)
    with errors_as_exit_codes():
        gates = load_params(params_file).gate
        promotion = registry.promote(
            tracking.load_settings(),
            gates,
            version=None if version is None else str(version),
            record=None if run_file is None else RunRecord.read(run_file),
        )
    if promotion is None:
        typer.echo("nothing to promote: no version has the challenger alias")
        return
    typer.echo(promotion.render())
    if not promotion.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def rollback() -> None:
    """Move the registry's `champion` alias back to the version it replaced.

    Repeated rollbacks walk further back through the champions, in the order
    they served. Not to be confused with `make rollback`, which switches the
    deployed traffic slot. See docs/mlflow.md.
    """
    from churn.registry import champion as registry
    from churn.registry import tracking

    with errors_as_exit_codes():
        result = registry.rollback(tracking.load_settings())
    typer.echo(result.render())
