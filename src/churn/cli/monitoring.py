"""Monitoring: data drift, the retraining trigger, live performance and A/B tests."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from churn.cli.common import EXIT_CHECK_FAILED, ParamsOption, errors_as_exit_codes
from churn.core.domain import load_domain
from churn.core.params import load_params

app = typer.Typer()


@app.command()
def drift(
    reference: Annotated[
        Path,
        typer.Option(help="CSV the model learned from (raw or prepared format).", dir_okay=False),
    ],
    current: Annotated[
        Path,
        typer.Option(help="CSV of recent records; id and label may be absent.", dir_okay=False),
    ],
    report: Annotated[
        Path | None, typer.Option(help="Write a self-contained HTML report here.", dir_okay=False)
    ] = None,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write the results as JSON here.", dir_okay=False),
    ] = None,
    params_file: ParamsOption = Path("params.yaml"),
) -> None:
    """Compare each feature's distribution in two CSVs (exit 0 no drift, 1 drift, 2 bad input).

    Rules and thresholds come from params.yaml's `drift` section; see docs/monitoring.md.
    """
    from churn.monitoring import drift as stage

    with errors_as_exit_codes():
        result = stage.main(
            reference,
            current,
            load_params(params_file).drift,
            domain=load_domain(),
            report=report,
            json_out=json_out,
        )
    typer.echo(result.render())
    if result.drift:
        raise typer.Exit(EXIT_CHECK_FAILED)


LogLocationOption = Annotated[
    str,
    typer.Option(
        "--log-dir",
        help="The prediction log: its directory, or the s3://bucket/prefix it is shipped to.",
    ),
]


@app.command()
def monitor(
    log_dir: LogLocationOption,
    *,
    reference: Annotated[
        Path, typer.Option(help="The training split the drift is measured against.", dir_okay=False)
    ] = Path("data/prepared/train.csv"),
    card: Annotated[Path, typer.Option(help="Card of the served model.", dir_okay=False)] = Path(
        "models/model_card.json"
    ),
    metrics: Annotated[
        Path, typer.Option(help="The model's test metrics (the baseline).", dir_okay=False)
    ] = Path("metrics.json"),
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the results as JSON here.", dir_okay=False)
    ] = None,
    params_file: ParamsOption = Path("params.yaml"),
) -> None:
    """Is retraining due? Drift of logged traffic, decay on reported outcomes (exit 1: yes).

    The retraining trigger: `make retrain LOG_DIR=...` and the retrain workflow
    retrain only when this exits 1. Rules: params.yaml's `drift` and
    `monitoring` sections; see docs/monitoring.md.
    """
    from churn.monitoring import monitor as stage

    with errors_as_exit_codes(), stage.local_log(log_dir) as directory:
        result = stage.main(
            directory,
            reference,
            card,
            metrics,
            load_params(params_file),
            domain=load_domain(),
            json_out=json_out,
        )
    typer.echo(result.render())
    if result.retrain:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("ab-report")
def ab_report(log_dir: LogLocationOption, params_file: ParamsOption = Path("params.yaml")) -> None:
    """Decide an A/B test (and compare a shadow challenger) from the prediction log.

    Prints each variant's share of right decisions and the verdict: "no
    decision yet" until both variants have the sample params.yaml's `ab_test`
    asks for, then the two-proportion z-test's answer. Always exit 0 (a
    verdict is information, not a failure); 2 on a bad log.
    """
    from churn.monitoring import abtest
    from churn.monitoring.monitor import local_log

    with errors_as_exit_codes(), local_log(log_dir) as directory:
        result = abtest.main(directory, load_params(params_file).ab_test)
    typer.echo(result.render())


@app.command()
def performance(
    log_dir: Annotated[
        Path, typer.Option(help="The prediction log's directory (CHURN_PREDICTION_LOG_DIR).")
    ],
    card: Annotated[
        Path, typer.Option(help="Card of the model to judge: only its predictions count.")
    ] = Path("models/model_card.json"),
    metrics: Annotated[
        Path, typer.Option(help="The model's test metrics (the baseline).", dir_okay=False)
    ] = Path("metrics.json"),
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Write the figures as JSON here.", dir_okay=False),
    ] = None,
    params_file: ParamsOption = Path("params.yaml"),
) -> None:
    """Score logged predictions against reported outcomes (exit 0 ok, 1 decayed, 2 bad input).

    Predictions are joined with POST /feedback outcomes; ROC AUC, precision
    and recall per window are compared with metrics.json, with the allowed
    drops in params.yaml's `monitoring` section. See docs/monitoring.md.
    """
    from churn.monitoring import performance as stage

    with errors_as_exit_codes():
        result = stage.main(log_dir, card, metrics, load_params(params_file).monitoring)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(result.to_json())
    typer.echo(result.render())
    if result.decayed:
        raise typer.Exit(EXIT_CHECK_FAILED)
