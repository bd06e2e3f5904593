"""The `churn` command run as a user runs it, with output a test can read.

No colour switches and no stripping: the command itself prints plain text
when its output is not a terminal, whatever ``GITHUB_ACTIONS``, ``FORCE_COLOR``
or ``TERM`` say (`churn.cli.app`), and the tests read what a CI script reads.
`tests/unit/test_cli_output.py` checks that under each set of variables.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import TYPE_CHECKING

from tests.support.servers import CHURN

if TYPE_CHECKING:
    from pathlib import Path

# Colour off for the other tools a test runs beside `churn` (dvc, git).
PLAIN_OUTPUT = {"NO_COLOR": "1", "TERM": "dumb"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")
"""An ANSI escape sequence: CSI (colours, cursor) or a two-byte escape."""


def churn(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``churn ARGS...`` in a subprocess, stdout and stderr pipes, stdin empty."""
    return subprocess.run(
        [CHURN, *args],
        capture_output=True,
        stdin=subprocess.DEVNULL,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
