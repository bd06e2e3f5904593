"""Release checks: the merge gate, the pull-request report, the smoke test."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from churn.cli.common import EXIT_CHECK_FAILED, ParamsOption, errors_as_exit_codes
from churn.core.domain import load_domain
from churn.core.params import load_params

if TYPE_CHECKING:
    from churn.release.gate import GateResult

app = typer.Typer()


BaselineOption = Annotated[
    str, typer.Option(help="Git revision to compare with (the pull request's target).")
]


def _gate_result(baseline: str, params_file: Path) -> tuple[GateResult, dict[str, Any]]:
    from churn.core.jsonio import read_json_object
    from churn.release import gate as gates

    current = read_json_object(Path(gates.METRICS_FILE))
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
    with errors_as_exit_codes():
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
    from churn.core.artifacts import CARD_FILE, ONNX_FILE, RUN_FILE, ModelCard, RunRecord
    from churn.release import gate as gates
    from churn.release import report as reports

    models = Path("models")
    with errors_as_exit_codes():
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
                title=load_domain().contract.title,
            )
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(markdown)
    typer.echo(f"wrote {out} ({result.render().splitlines()[0]})")


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

    from churn.release import smoke as checks

    with errors_as_exit_codes():
        if card is not None:
            from churn.core.artifacts import ModelCard

            expect_sha256 = ModelCard.read(card).onnx_sha256
        result = checks.check(
            url,
            load_domain().contract.api_example(),
            expect_sha256=expect_sha256,
            api_key=os.environ.get("CHURN_API_KEY"),
            ready_timeout=ready_timeout,
        )
    typer.echo(result.render())
