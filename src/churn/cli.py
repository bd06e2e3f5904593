"""The `churn` command: one subcommand per pipeline stage and per tool.

Every path arrives as an option (from `dvc.yaml`'s ``cmd`` or a person's
shell); nothing is rebuilt from defaults inside the stages. Heavy libraries
are imported inside each command, so ``churn --help`` answers at once.

Exit codes: 0 success, 1 the data or model failed a check, 2 a usage or
input error (missing or unreadable file, bad parameters). Expected errors
print one readable line on stderr, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from churn.errors import (
    DataError,
    ModelError,
    PredictionLogError,
    ServiceError,
    TrackingError,
    ValidationFailedError,
)
from churn.params import ParamsError, load_params

if TYPE_CHECKING:
    from churn.gate import GateResult

app = typer.Typer(
    help="Customer-churn pipeline: prepare, validate, train, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

ParamsOption = Annotated[Path, typer.Option("--params", help="Parameters file.", dir_okay=False)]
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2


@app.callback()
def _configure(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    # Our own messages at INFO; third-party libraries only when they warn.
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("churn").setLevel(logging.DEBUG if verbose else logging.INFO)


@contextmanager
def _errors_as_exit_codes() -> Iterator[None]:
    """Turn the package's expected errors into one line and an exit code."""
    try:
        yield
    except (DataError, ParamsError, ModelError, TrackingError, PredictionLogError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    except (ValidationFailedError, ServiceError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_CHECK_FAILED) from None


@app.command()
def prepare(
    raw: Annotated[Path, typer.Option(help="Raw customer CSV.", dir_okay=False)],
    out_dir: Annotated[Path, typer.Option(help="Directory for train.csv and test.csv.")],
    params_file: ParamsOption = Path("params.yaml"),
) -> None:
    """Clean the raw file and write a seeded, stratified train/test split."""
    from churn import prepare as stage

    with _errors_as_exit_codes():
        stage.main(raw, out_dir, load_params(params_file).prepare)


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="CSV files in the raw or prepared format.")],
    report: Annotated[
        Path | None, typer.Option(help="Write the machine-readable report here (JSON).")
    ] = None,
) -> None:
    """Check CSV files against the data contract (exit 0 pass, 1 fail, 2 unreadable).

    Several files are checked as one table, so an id that appears in two of
    them (a customer in both train and test) is reported as a duplicate.
    """
    from dataclasses import replace

    from churn.artifacts import file_sha256
    from churn.data import load
    from churn.validation import validate as run_validation

    with _errors_as_exit_codes():
        frame = load(paths)
    result = run_validation(frame, [str(p) for p in paths])
    result = replace(result, source_sha256={str(p): file_sha256(p) for p in paths})
    if report is not None:
        result.write_json(report)
    typer.echo(result.render())
    if not result.success:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def drift(
    reference: Annotated[
        Path,
        typer.Option(help="CSV the model learned from (raw or prepared format).", dir_okay=False),
    ],
    current: Annotated[
        Path,
        typer.Option(help="CSV of recent customers; id and label may be absent.", dir_okay=False),
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
    from churn import drift as stage

    with _errors_as_exit_codes():
        result = stage.main(
            reference, current, load_params(params_file).drift, report=report, json_out=json_out
        )
    typer.echo(result.render())
    if result.drift:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def train(
    train_csv: Annotated[Path, typer.Option("--train", help="Training split CSV.", dir_okay=False)],
    validation_report: Annotated[
        Path, typer.Option(help="Validation report that must say the data passed.")
    ],
    model_dir: Annotated[Path, typer.Option(help="Directory for the model and its card.")],
    params_file: ParamsOption = Path("params.yaml"),
    dvc_lock: Annotated[
        Path, typer.Option(help="DVC lock file whose SHA-256 is tagged on the run.")
    ] = Path("dvc.lock"),
) -> None:
    """Fit the pipeline, save it with its card, log and register it in MLflow.

    The new version gets the `challenger` alias and lineage tags (git commit,
    dvc.lock hash, the training data's DVC hash). MLFLOW_TRACKING_URI selects
    the store; CHURN_TRACKING_FALLBACK=local allows the local store when the
    server is unreachable.
    """
    from churn import tracking
    from churn import train as stage

    with _errors_as_exit_codes():
        params = load_params(params_file)
        stage.main(
            train_csv,
            validation_report,
            model_dir,
            params=params.train,
            drift=params.drift,
            settings=tracking.load_settings(),
            dvc_lock=dvc_lock,
        )


@app.command()
def evaluate(
    test_csv: Annotated[Path, typer.Option("--test", help="Held-out split CSV.", dir_okay=False)],
    model_dir: Annotated[Path, typer.Option(help="Directory holding the trained model.")],
    metrics: Annotated[Path, typer.Option(help="Where to write metrics (JSON).")],
    plots_dir: Annotated[Path, typer.Option(help="Directory for plot data and PNG images.")],
    params_file: ParamsOption = Path("params.yaml"),
) -> None:
    """Score the held-out split: metrics.json, plot data for DVC and PNG images."""
    from churn import evaluate as stage

    with _errors_as_exit_codes():
        params = load_params(params_file)
        stage.main(
            test_csv,
            model_dir,
            metrics_path=metrics,
            plots_dir=plots_dir,
            params=params.evaluate,
            seed=params.train.seed,
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
) -> None:
    """Print the metrics table and where the model, plots and MLflow runs are."""
    from churn.summary import render

    with _errors_as_exit_codes():
        typer.echo(render(metrics, model_dir, plots_dir))


BaselineOption = Annotated[
    str, typer.Option(help="Git revision to compare with (the pull request's target).")
]


def _gate_result(baseline: str, params_file: Path) -> tuple[GateResult, dict[str, Any]]:
    from churn import gate as gates

    current = json.loads(Path(gates.METRICS_FILE).read_text())
    diff = gates.metrics_diff(baseline)
    validation = gates.read_json(Path("reports/validation.json"))
    loadtest = gates.read_json(Path("loadtest/results/summary.json"))
    result = gates.check_gate(
        current,
        gates.baseline_values(diff),
        load_params(params_file).gate,
        baseline_name=baseline,
        validation_passed=None if validation is None else bool(validation["success"]),
        loadtest_passed=None if loadtest is None else bool(loadtest["slo_met"]),
    )
    metrics = diff or {name: {"old": None, "new": value} for name, value in current.items()}
    return result, {"metrics": metrics, "validation": validation, "loadtest": loadtest}


@app.command()
def gate(
    baseline: BaselineOption = "main", params_file: ParamsOption = Path("params.yaml")
) -> None:
    """Fail (exit 1) when a metric breaks its limit or regresses against the baseline.

    Also fails when data validation or the load test (if run) failed.
    Run from the repository root after `dvc repro`.
    """
    with _errors_as_exit_codes():
        result, _ = _gate_result(baseline, params_file)
    typer.echo(result.render())
    if not result.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def report(
    baseline: BaselineOption = "main",
    out: Annotated[Path, typer.Option(help="Markdown file to write.")] = Path("reports/pr.md"),
    image_base: Annotated[
        str, typer.Option(help="Prefix for plot image links (a URL or a relative path).")
    ] = "../plots/images",
    params_file: ParamsOption = Path("params.yaml"),
) -> None:
    """Write the pull-request report: metrics and params vs the baseline, validation,
    model, load test and plots, as Markdown."""
    from churn import gate as gates
    from churn import report as reports
    from churn.artifacts import CARD_FILE, ONNX_FILE, RUN_FILE, ModelCard, RunRecord

    models = Path("models")
    with _errors_as_exit_codes():
        result, inputs = _gate_result(baseline, params_file)
        run_file = models / RUN_FILE
        images = sorted(Path("plots/images").glob("*.png"))
        markdown = reports.render(
            reports.ReportInputs(
                gate=result,
                metrics=inputs["metrics"],
                params=gates.params_diff(baseline),
                validation=inputs["validation"],
                card=ModelCard.read(models / CARD_FILE),
                run=RunRecord.read(run_file) if run_file.is_file() else None,
                onnx_bytes=(models / ONNX_FILE).stat().st_size,
                loadtest=inputs["loadtest"],
                images={p.stem.replace("_", " "): f"{image_base}/{p.name}" for p in images},
            )
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    typer.echo(f"wrote {out} ({result.render().splitlines()[0]})")


@app.command()
def promote(
    version: Annotated[
        int | None, typer.Option(help="Version to promote (default: the challenger).", min=1)
    ] = None,
    run_file: Annotated[
        Path | None,
        typer.Option(
            help="Promote the version this file records (models/mlflow_run.json): "
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
    from churn import registry, tracking
    from churn.artifacts import RunRecord

    if version is not None and run_file is not None:
        typer.echo("error: give --version or --run-file, not both", err=True)
        raise typer.Exit(EXIT_USAGE)
    with _errors_as_exit_codes():
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
    from churn import registry, tracking

    with _errors_as_exit_codes():
        result = registry.rollback(tracking.load_settings())
    typer.echo(result.render())


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
    from churn import monitor as stage

    with _errors_as_exit_codes(), stage.local_log(log_dir) as directory:
        result = stage.main(
            directory, reference, card, metrics, load_params(params_file), json_out=json_out
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
    from churn import abtest
    from churn.monitor import local_log

    with _errors_as_exit_codes(), local_log(log_dir) as directory:
        result = abtest.main(directory, load_params(params_file).ab_test)
    typer.echo(result.render())


@app.command()
def smoke(
    url: Annotated[
        str, typer.Argument(help="Base URL of the service, e.g. http://127.0.0.1:8000.")
    ],
    card: Annotated[
        Path | None,
        typer.Option(help="Model card whose onnx_sha256 the service must serve.", dir_okay=False),
    ] = None,
    expect_sha256: Annotated[
        str | None, typer.Option(help="SHA-256 of the ONNX model the service must serve.")
    ] = None,
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for /ready.")] = 60.0,
) -> None:
    """Check a running service: /ready, the model it serves, one prediction (exit 1 on failure).

    The API key, if the service needs one, comes from CHURN_API_KEY.
    """
    import os

    from churn import smoke as checks

    with _errors_as_exit_codes():
        if card is not None:
            from churn.artifacts import ModelCard

            expect_sha256 = ModelCard.read(card).onnx_sha256
        result = checks.check(
            url,
            expect_sha256=expect_sha256,
            api_key=os.environ.get("CHURN_API_KEY"),
            ready_timeout=ready_timeout,
        )
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
    from churn import performance as stage

    with _errors_as_exit_codes():
        result = stage.main(log_dir, card, metrics, load_params(params_file).monitoring)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(result.to_json())
    typer.echo(result.render())
    if result.decayed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    model_dir: Annotated[
        Path | None, typer.Option(help="Model directory (default: CHURN_MODEL_DIR or models).")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
) -> None:
    """Serve predictions over HTTP (FastAPI under uvicorn, one process).

    The model (and the candidate of CHURN_CHALLENGER_MODEL_DIR/URI, if set) is
    loaded and self-checked before the port is bound: a missing, corrupt or
    mismatched model (or an unwritable prediction log) exits with one line
    and code 2. Settings come from CHURN_* environment variables
    (see churn.serving.settings).
    """
    import uvicorn
    from pydantic import ValidationError

    from churn.serving import loader, prediction_log
    from churn.serving.app import create_app
    from churn.serving.rollout import load_challenger
    from churn.serving.settings import ServingSettings

    try:
        settings = ServingSettings()
        if model_dir is not None:
            settings = settings.model_copy(update={"model_dir": model_dir})
    except ValidationError as exc:
        problems = "; ".join(
            f"{e['loc'][0]}: {e['msg']}" if e["loc"] else e["msg"] for e in exc.errors()
        )
        typer.echo(f"error: invalid settings: {problems}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    with _errors_as_exit_codes():
        prediction_log.check(settings)
        model = loader.load(settings)
        challenger = load_challenger(settings)
    uvicorn.run(
        create_app(settings, model, challenger),
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        server_header=False,
    )


def main() -> None:  # pragma: no cover - console-script shim
    app()
