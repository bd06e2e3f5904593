"""The prediction service."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from churn.cli.common import EXIT_USAGE, errors_as_exit_codes
from churn.core.domain import load_domain

app = typer.Typer()


@app.command()
def serve(  # noqa: PLR0917 (typer: one parameter per option)
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to bind.")] = 8000,
    model_dir: Annotated[
        Path | None, typer.Option(help="Model directory (default: CHURN_MODEL_DIR or models).")
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    max_header_bytes: Annotated[
        int | None,
        typer.Option(help="Largest request head; more gets 431 (CHURN_MAX_HEADER_BYTES, 32768)."),
    ] = None,
    request_timeout: Annotated[
        float | None,
        typer.Option(
            help="Seconds a request may take to arrive, head and body; then 408 and close "
            "(CHURN_REQUEST_TIMEOUT_S, 10)."
        ),
    ] = None,
    keep_alive: Annotated[
        int | None,
        typer.Option(help="Seconds an idle connection stays open (CHURN_KEEP_ALIVE_S, 5)."),
    ] = None,
    max_in_flight: Annotated[
        int | None,
        typer.Option(
            help="Requests in progress at once; more get 503 + Retry-After (CHURN_MAX_IN_FLIGHT, "
            "64)."
        ),
    ] = None,
    max_batch_in_flight: Annotated[
        int | None,
        typer.Option(
            help="/predict/batch requests in progress at once (CHURN_MAX_BATCH_IN_FLIGHT, 1)."
        ),
    ] = None,
) -> None:
    """Serve predictions over HTTP (FastAPI under uvicorn, one process).

    The model (and the candidate of CHURN_CHALLENGER_MODEL_DIR/URI, if set) is
    loaded and self-checked before the port is bound: a missing, corrupt or
    mismatched model (or an unwritable prediction log) exits with one line
    and code 2. Settings come from CHURN_* environment variables
    (see churn.serving.settings and churn.serving.limits); a flag wins over
    its variable.

    The HTTP layer is uvicorn's httptools protocol with a request-head size
    limit and a read deadline added (churn.serving.protocol): neither exists
    in uvicorn itself.
    """
    import uvicorn
    from pydantic import ValidationError

    from churn.serving import loader, prediction_log
    from churn.serving.app import create_app
    from churn.serving.limits import LimitSettings
    from churn.serving.protocol import guarded_protocol
    from churn.serving.rollout import load_challenger
    from churn.serving.settings import ServingSettings

    try:
        settings = ServingSettings()
        if model_dir is not None:
            settings = settings.model_copy(update={"model_dir": model_dir})
        flags: dict[str, Any] = {
            "max_header_bytes": max_header_bytes,
            "request_timeout_s": request_timeout,
            "keep_alive_s": keep_alive,
            "max_in_flight": max_in_flight,
            "max_batch_in_flight": max_batch_in_flight,
        }
        # Validated like the variables (a flag is an override, not a bypass).
        limits = LimitSettings(
            **{name: value for name, value in flags.items() if value is not None}
        )
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
        create_app(settings, model, challenger, contract, limits),
        host=host,
        port=port,
        http=guarded_protocol(limits.max_header_bytes, limits.request_timeout_s),
        timeout_keep_alive=limits.keep_alive_s,
        access_log=access_log,
        log_level="info",
        server_header=False,
    )
