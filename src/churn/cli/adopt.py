"""`churn adopt`: make the project's domain a table someone brings (docs/adopt.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from churn.cli.common import EXIT_USAGE

app = typer.Typer()


@app.command()
def adopt(  # noqa: PLR0917 (typer: one parameter per option)
    data: Annotated[Path, typer.Option(help="The table: a CSV file with a header row.")],
    label: Annotated[str, typer.Option(help="The column to predict (two values).")],
    positive: Annotated[str, typer.Option(help="The label's value that counts as positive.")],
    id_column: Annotated[
        str | None,
        typer.Option("--id", help="The column that names a row (default: rows are numbered)."),
    ] = None,
    project: Annotated[Path, typer.Option(help="The project to change.", file_okay=False)] = Path(),
    max_levels: Annotated[
        int, typer.Option(min=2, help="Text columns with more distinct values are left out.")
    ] = 50,
    margin: Annotated[
        float,
        typer.Option(min=0.0, help="Numeric ranges: the observed one widened by this share of it."),
    ] = 0.10,
) -> None:
    """Replace the example with DATA: draft the domain room's contract, repairs, scenarios
    and tests, copy the table to data/raw and set the gate from a measured baseline
    (exit 0; 2 and nothing changed when the table cannot be used)."""
    from churn.adopt.apply import apply, plan, summary
    from churn.adopt.profile import AdoptError, Options

    options = Options(max_levels=max_levels, margin=margin)
    try:
        adoption = plan(
            project, data, label=label, positive=positive, id_column=id_column, options=options
        )
    except AdoptError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    for dropped in adoption.profile.dropped:
        typer.echo(f"warning: {dropped.name} left out: {dropped.reason}", err=True)
    apply(project, adoption)
    typer.echo(summary(adoption))
