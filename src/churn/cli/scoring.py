"""Batch scoring: a whole file of records through the served model (docs/scoring.md)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from churn.cli.common import EXIT_CHECK_FAILED, errors_as_exit_codes
from churn.core.domain import load_domain

app = typer.Typer()


class Engine(StrEnum):
    local = "local"
    spark = "spark"


@app.command()
def score(  # noqa: PLR0917 (typer: one parameter per option)
    input_uri: Annotated[
        str,
        typer.Option("--input", help="CSV or Parquet records: a path or s3://bucket/key."),
    ],
    output: Annotated[
        str,
        typer.Option(
            help="Parquet scores: a path or s3://bucket/key. Beside it: <name>.rejects.parquet "
            "and <name>.summary.json."
        ),
    ],
    overwrite: Annotated[bool, typer.Option(help="Replace outputs that exist.")] = False,
    engine: Annotated[
        Engine, typer.Option(help="local: this process; spark: a Spark job (--master).")
    ] = Engine.local,
    master: Annotated[
        str | None,
        typer.Option(help="Spark master with --engine spark (default: SPARK_MASTER or local[*])."),
    ] = None,
    model_dir: Annotated[
        Path | None, typer.Option(help="Model directory (default: CHURN_MODEL_DIR or models).")
    ] = None,
    model_uri: Annotated[
        str | None,
        typer.Option(help="Or a registry model, models:/<name>@<alias> (CHURN_MODEL_URI)."),
    ] = None,
) -> None:
    """Score every row of a file with the served model (exit 0 all scored, 1 some rows
    rejected, 2 bad input).

    The model is loaded and checked as `churn serve` loads it (hash, self-check,
    CHURN_MODEL_SHA256 pin); each row is checked against the data contract;
    rows that break it go to the rejects file with the reason, unscored. The
    scores carry the id, probability, decision, threshold, model version and
    hash, and the scoring time. Nothing is left under the output names when
    the run fails.
    """
    from churn.scoring.model import load_model

    with errors_as_exit_codes():
        domain = load_domain()
        model = load_model(domain.contract, model_dir=model_dir, model_uri=model_uri)
        if engine is Engine.spark:
            from churn.scoring import spark

            summary = spark.score(
                input_uri, output, domain=domain, model=model, overwrite=overwrite, master=master
            )
        else:
            from churn.scoring import local

            summary = local.run(
                input_uri,
                local.Outputs.beside(output),
                domain=domain,
                model=model,
                overwrite=overwrite,
            )
    typer.echo(summary.render())
    if summary.rejected:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("score-report")
def score_report(
    output: Annotated[str, typer.Option(help="The scores a `churn score` run wrote.")],
    drift_json: Annotated[
        Path | None,
        typer.Option(
            "--drift-json", help="`churn drift --json` of the same input.", dir_okay=False
        ),
    ] = None,
) -> None:
    """Markdown of a scoring run (its summary beside OUTPUT) for a job summary or a review.

    Counts, rejects, the model's version and hash, the score distribution and,
    with --drift-json, `churn drift`'s verdict on the same input. Exit 2 when
    the summary cannot be read.
    """
    from churn.scoring.report import markdown

    with errors_as_exit_codes():
        typer.echo(markdown(output, drift_json))
