"""The `churn` command run as a user runs it, with output a test can read.

On GitHub's runners (``GITHUB_ACTIONS=true``) typer forces rich terminal
output; ``NO_COLOR`` and a dumb terminal turn the colour codes off, and
`plain` strips any that remain, so assertions on the text hold everywhere.
"""

from __future__ import annotations

import os
import re
import subprocess
from typing import TYPE_CHECKING

from tests.support.servers import CHURN

if TYPE_CHECKING:
    from pathlib import Path

PLAIN_OUTPUT = {"NO_COLOR": "1", "TERM": "dumb"}
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def plain(text: str) -> str:
    """``text`` without ANSI escape sequences."""
    return ANSI.sub("", text)


def churn(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    """``churn ARGS...`` in a subprocess; stdout and stderr come back without colour codes."""
    result = subprocess.run(
        [CHURN, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=cwd,
        env={**os.environ, **(env or {}), **PLAIN_OUTPUT},
    )
    return subprocess.CompletedProcess(
        result.args, result.returncode, plain(result.stdout), plain(result.stderr)
    )
