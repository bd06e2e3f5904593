"""The `churn` command: the root, with one Typer sub-app per concern merged into it.

`pipeline` (the stages dvc.yaml runs), `serving`, `scoring` (batch scoring),
`release` (gate, report, smoke), `registry` (promote, rollback) and
`monitoring` (drift, monitor, performance, ab-report) each live in their own
module of this folder.

Every path arrives as an option (from `dvc.yaml`'s ``cmd`` or a person's
shell); nothing is rebuilt from defaults inside the stages. Heavy libraries
are imported inside each command, so ``churn --help`` answers at once.

Exit codes: 0 success, 1 the data or model failed a check, 2 a usage or
input error (missing or unreadable file, bad parameters). Expected errors
print one readable line on stderr, never a traceback.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Annotated, Any

import typer
from typer.core import TyperGroup

from churn.cli import adopt, monitoring, pipeline, registry, release, scoring, serving
from churn.core.blas import pin_kernels


def _is_terminal(stream: IO[str] | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # closed
        return False


@contextmanager
def _plain_unless_terminal() -> Iterator[None]:
    """Typer's help and usage errors without ANSI codes unless both stdout and
    stderr are terminals.

    Typer forces rich's terminal mode whenever ``GITHUB_ACTIONS``, ``FORCE_COLOR``
    or ``PY_COLORS`` is set, into pipes and files too, where scripts and CI
    parse the text. Colour is for people at a terminal: on a runner, in a pipe
    or a log file the output is plain, whatever those variables say. (Typer
    has one setting for both streams, read when it renders: it is set for
    this invocation only, so it also holds under typer's ``CliRunner``.)
    """
    if _is_terminal(sys.stdout) and _is_terminal(sys.stderr):
        yield
        return
    try:
        from typer import rich_utils
    except ImportError:  # no rich: typer prints click's plain text
        yield
        return
    before = rich_utils.FORCE_TERMINAL
    rich_utils.FORCE_TERMINAL = False
    try:
        yield
    finally:
        rich_utils.FORCE_TERMINAL = before


class _Root(TyperGroup):
    """The root command: plain text out of a terminal (`_plain_unless_terminal`)."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        with _plain_unless_terminal():
            return super().main(*args, **kwargs)


app = typer.Typer(
    cls=_Root,
    help="The ML pipeline (prepare, validate, train, evaluate), its service and its checks.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for group in (pipeline, serving, scoring, release, registry, monitoring, adopt):
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
    """The console script (plain text out of a terminal: see `_Root`)."""
    # Before numpy loads: the pipeline's outputs are the same bytes on every x86-64 CPU.
    pin_kernels()
    app()
