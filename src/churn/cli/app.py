"""The `churn` command: the root, with one Typer sub-app per concern merged into it.

`pipeline` (the stages dvc.yaml runs), `serving`, `release` (gate, report,
smoke), `registry` (promote, rollback) and `monitoring` (drift, monitor,
performance, ab-report) each live in their own module of this folder.

Every path arrives as an option (from `dvc.yaml`'s ``cmd`` or a person's
shell); nothing is rebuilt from defaults inside the stages. Heavy libraries
are imported inside each command, so ``churn --help`` answers at once.

Exit codes: 0 success, 1 the data or model failed a check, 2 a usage or
input error (missing or unreadable file, bad parameters). Expected errors
print one readable line on stderr, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from churn.cli import monitoring, pipeline, registry, release, serving

app = typer.Typer(
    help="The ML pipeline (prepare, validate, train, evaluate), its service and its checks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for group in (pipeline, serving, release, registry, monitoring):
    app.add_typer(group.app)


@app.callback()
def _configure(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    # Our own messages at INFO; third-party libraries only when they warn.
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("churn").setLevel(logging.DEBUG if verbose else logging.INFO)


def main() -> None:
    """The console script. Typer forces rich's terminal mode (ANSI colour codes)
    whenever GITHUB_ACTIONS is set, even into pipes and log files: let a stream
    that is not a terminal get plain text, on a runner as on a laptop."""
    if not sys.stderr.isatty():
        os.environ.setdefault("_TYPER_FORCE_DISABLE_TERMINAL", "1")
    app()
