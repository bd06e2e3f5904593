"""Release checks: the merge gate, the pull-request report, the smoke test."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from churn.cli.common import EXIT_CHECK_FAILED, ParamsOption, errors_as_exit_codes
from churn.core.domain import load_domain

app = typer.Typer()


BaselineOption = Annotated[
    str, typer.Option(help="Git revision to compare with (the pull request's target).")
]
StepsOption = Annotated[
    Path | None,
    typer.Option(
        "--steps",
        help="The CI steps' outcomes (reports/ci-steps.tsv, scripts/ci-pipeline.sh writes it).",
        dir_okay=False,
    ),
]


@app.command()
def gate(
    baseline: BaselineOption = "main",
    params_file: ParamsOption = Path("params.yaml"),
    steps: StepsOption = None,
) -> None:
    """Fail (exit 1) when a metric breaks its limit or regresses against the baseline.

    The rules are the baseline's `gate:` in params.yaml, not this checkout's.
    Also fails when data validation, the load test or a CI step (--steps)
    failed, and when the baseline does not resolve.
    Run from the repository root after `dvc repro`.
    """
    from churn.release.gate import GateInputs, judge

    with errors_as_exit_codes():
        result = judge(GateInputs(baseline, params_file=params_file, steps_file=steps)).result
    typer.echo(result.render())
    if not result.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command()
def report(
    baseline: BaselineOption = "main",
    out: Annotated[
        Path,
        typer.Option(help="Markdown with plot images (for `cml comment`, which uploads them)."),
    ] = Path("reports/pr.md"),
    inline_out: Annotated[
        Path | None,
        typer.Option(help="The same report with inline charts (for `gh`, the job summary)."),
    ] = Path("reports/pr-inline.md"),
    params_file: ParamsOption = Path("params.yaml"),
    steps: StepsOption = None,
) -> None:
    """Write the pull-request report: the gate's verdict, CI steps, metrics and params
    vs the baseline, validation, model, load test, and plots beside the baseline's.

    Written whatever happened: a failed step is reported, not an error.
    """
    from churn.core.artifacts import CARD_FILE, ONNX_FILE, RUN_RECORD, ModelCard, RunRecord
    from churn.release import gate as gates
    from churn.release import plots
    from churn.release import report as reports

    models = Path("models")
    with errors_as_exit_codes():
        judged = gates.judge(gates.GateInputs(baseline, params_file=params_file, steps_file=steps))
        card_file, onnx_file = models / CARD_FILE, models / ONNX_FILE
        card = ModelCard.read(card_file) if card_file.is_file() else None
        pairs = plots.pairs(judged.baseline_commit, plots.specs())
        images = plots.write_png(pairs, out.parent / "plots", baseline)
        base = reports.ReportInputs(
            gate=judged.result,
            metrics=judged.metrics,
            params=gates.params_diff(judged.baseline_commit, params_file),
            validation=judged.validation,
            card=card,
            run=None if card is None else RunRecord.read_for(RUN_RECORD, card),
            onnx_bytes=onnx_file.stat().st_size if onnx_file.is_file() else None,
            loadtest=judged.loadtest,
            steps=judged.steps,
            title=load_domain().contract.title,
        )
        with_images = [
            f"![{pair.spec.title}]({image.relative_to(out.parent)})"
            for pair, image in zip(pairs, images, strict=True)
        ]
        variants = {out: with_images}
        if inline_out is not None:
            variants[inline_out] = plots.inline(pairs, baseline)
        for path, lines in variants.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(reports.render(replace(base, plots=lines)))
    written = " and ".join(str(path) for path in variants)
    typer.echo(f"wrote {written} ({judged.result.render().splitlines()[0]})")


@app.command("check-reproduced")
def check_reproduced(
    commit: Annotated[str, typer.Option(help="The commit whose files must match.")] = "HEAD",
) -> None:
    """Fail (exit 1) unless dvc.lock and the pipeline outputs Git tracks are byte-identical
    to the committed ones: run after `dvc repro`. Says which command to run and commit."""
    from churn.release import reproduce

    with errors_as_exit_codes():
        result = reproduce.check(commit)
    typer.echo(result.render())
    if not result.passed:
        raise typer.Exit(EXIT_CHECK_FAILED)


@app.command("model-pin")
def model_pin(
    model_dir: Annotated[
        Path, typer.Option(help="The model directory, a pipeline output.", file_okay=False)
    ] = Path("models"),
    commit: Annotated[
        str | None,
        typer.Option(help="Read dvc.lock from this commit (default: the working tree's)."),
    ] = None,
) -> None:
    """Print the model's ONNX SHA-256 for CHURN_MODEL_SHA256, once its files are proven to
    be the ones dvc.lock records (exit 1 when they are not: a tampered or stale copy)."""
    from churn.release import provenance

    with errors_as_exit_codes():  # no dvc.lock, no card: exit 2
        try:
            pin = provenance.model_pin(Path(), model_dir, commit)
        except provenance.ProvenanceError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(EXIT_CHECK_FAILED) from None
    typer.echo(pin)


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
