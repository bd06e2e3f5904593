"""Reading files as a Git revision has them (the base branch, the committed tree).

The gate and the report judge a change against its baseline *as committed*:
the baseline's `params.yaml` (its gate rules), its `metrics.json` and its plot
data come from Git, never from the working tree the change produced.
"""

from __future__ import annotations

import subprocess

from churn.core.errors import DataError


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise DataError("git not found: the gate and the report need it") from None


def resolve(revision: str) -> str | None:
    """The commit ``revision`` names, or None when it does not resolve here."""
    result = _git("rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}")
    return result.stdout.decode().strip() if result.returncode == 0 else None


def show(commit: str, path: str) -> bytes | None:
    """``path`` (relative to the repository root) as ``commit`` has it; None if absent."""
    result = _git("cat-file", "blob", f"{commit}:{path}")
    return result.stdout if result.returncode == 0 else None


def tracked(paths: list[str]) -> list[str]:
    """Which of ``paths`` Git tracks (in the index)."""
    if not paths:
        return []
    result = _git("ls-files", "--", *paths)
    return result.stdout.decode().split()
