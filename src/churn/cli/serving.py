"""The prediction service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from churn.cli.common import EXIT_USAGE, errors_as_exit_codes
from churn.core.domain import load_domain

app = typer.Typer()


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
    with errors_as_exit_codes():
        contract = load_domain().contract
        prediction_log.check(settings)
        model = loader.load(settings, contract)
        challenger = load_challenger(settings, contract)
    uvicorn.run(
        create_app(settings, model, challenger, contract),
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        server_header=False,
    )
