"""The pipeline's stages as commands (`dvc.yaml` calls them): prepare, validate, train, evaluate.

Each command picks up the domain room (`load_domain`) and the parameters,
and hands both to the stage's ``main`` as values. dvc.yaml lists this file
among each stage's code dependencies: a change to another command group
does not re-run the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from churn.cli.common import EXIT_CHECK_FAILED, ParamsOption, RunRecordOption, errors_as_exit_codes
from churn.core.artifacts import RUN_RECORD
from churn.core.domain import load_domain
from churn.core.params import load_params

app = typer.Typer()


@app.command()
def prepare(
    raw: Annotated[
        Path, typer.Option(help="Raw data: a CSV file, or a folder whose *.csv files are read.")
    ],
    out_dir: Annotated[Path, typer.Option(help="Directory for train.csv and test.csv.")],
    params_file: ParamsOption = Path("params.yaml"),
) -> None:
    """Repair the raw data (the domain's repairs) and write a seeded, stratified split."""
    from churn.pipeline import prepare as stage

    with errors_as_exit_codes():
        stage.main(raw, out_dir, load_params(params_file).prepare, load_domain())


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="CSV files in the raw or prepared format.")],
    report: Annotated[
        Path | None, typer.Option(help="Write the machine-readable report here (JSON).")
    ] = None,
) -> None:
    """Check CSV files against the data contract (exit 0 pass, 1 fail, 2 unreadable).

    Several files are checked as one table, so an id that appears in two of
    them (a record in both train and test) is reported as a duplicate.
    """
    from dataclasses import replace

    from churn.core.artifacts import file_sha256
    from churn.core.data import load
    from churn.pipeline.validation import validate as run_validation

    with errors_as_exit_codes():
        domain = load_domain()
        frame = load(paths, domain)
    result = run_validation(frame, [str(p) for p in paths], domain.contract)
    result = replace(result, source_sha256={str(p): file_sha256(p) for p in paths})
    if report is not None:
        result.write_json(report)
    typer.echo(result.render())
    if not result.success:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def train(
    train_csv: Annotated[Path, typer.Option("--train", help="Training split CSV.", dir_okay=False)],
    *,
    validation_report: Annotated[
        Path, typer.Option(help="Validation report that must say the data passed.")
    ],
    model_dir: Annotated[Path, typer.Option(help="Directory for the model and its card.")],
    params_file: ParamsOption = Path("params.yaml"),
    dvc_lock: Annotated[
        Path, typer.Option(help="DVC lock file whose SHA-256 is tagged on the run.")
    ] = Path("dvc.lock"),
    run_record: RunRecordOption = RUN_RECORD,
) -> None:
    """Fit the pipeline, save it with its card, log and register it in MLflow.

    The new version gets the `challenger` alias and lineage tags (git commit,
    dvc.lock hash, the training data's DVC hash). MLFLOW_TRACKING_URI selects
    the store; CHURN_TRACKING_FALLBACK=local allows the local store when the
    server is unreachable.
    """
    from churn.pipeline import train as stage
    from churn.registry import tracking

    with errors_as_exit_codes():
        params = load_params(params_file)
        stage.main(
            train_csv,
            validation_report,
            model_dir,
            params=params.train,
            drift=params.drift,
            settings=tracking.load_settings(),
            domain=load_domain(),
            run_record=run_record,
            dvc_lock=dvc_lock,
        )


@app.command()
def evaluate(
    test_csv: Annotated[Path, typer.Option("--test", help="Held-out split CSV.", dir_okay=False)],
    *,
    model_dir: Annotated[Path, typer.Option(help="Directory holding the trained model.")],
    metrics: Annotated[Path, typer.Option(help="Where to write metrics (JSON).")],
    plots_dir: Annotated[Path, typer.Option(help="Directory for plot data and PNG images.")],
    params_file: ParamsOption = Path("params.yaml"),
    run_record: RunRecordOption = RUN_RECORD,
) -> None:
    """Score the held-out split: metrics.json, plot data for DVC and PNG images."""
    from churn.pipeline import evaluate as stage

    with errors_as_exit_codes():
        params = load_params(params_file)
        stage.main(
            test_csv,
            model_dir,
            metrics_path=metrics,
            plots_dir=plots_dir,
            params=params.evaluate,
            seed=params.train.seed,
            domain=load_domain(),
            run_record=run_record,
        )


@app.command()
def summary(
    metrics: Annotated[Path, typer.Option(help="Metrics file written by evaluate.")] = Path(
        "metrics.json"
    ),
    model_dir: Annotated[Path, typer.Option(help="Directory holding the trained model.")] = Path(
        "models"
    ),
    plots_dir: Annotated[Path, typer.Option(help="Directory of plots.")] = Path("plots"),
    run_record: RunRecordOption = RUN_RECORD,
) -> None:
    """Print the metrics table and where the model, plots and MLflow runs are."""
    from churn.pipeline.summary import render

    with errors_as_exit_codes():
        typer.echo(render(metrics, model_dir, plots_dir, run_record))
