"""Git in a test's own repository, with a fixed identity (no global config needed)."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path


def git(root: Path, *args: str) -> str:
    """``git ARGS...`` in ``root``; its stdout, stripped. Fails the test on an error."""
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
