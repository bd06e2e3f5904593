"""The project copied into a temporary git repository, as a fresh clone has it."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from churn.core.domain import DOMAIN_ENV
from tests.support.paths import REPO
from tests.support.servers import BIN


@dataclass(frozen=True)
class Repo:
    root: Path
    env: dict[str, str]

    def run(
        self, *args: str, check: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            args,
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
            )
        return result

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run(str(BIN / "dvc"), *args, check=check)


def _project_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout.split("\n")  # fmt: skip
    return [name for name in listed if name and (REPO / name).is_file()]


def copy_project(root: Path) -> Repo:
    """A git repository at `root` holding the project's files as they are now, committed.

    Nothing is reproduced yet: no DVC cache, no stage outputs, no MLflow store.
    """
    for name in _project_files():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    # The caller's MLflow store and service settings stay out; the domain the suite runs on stays.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLFLOW_", "CHURN_")) or k == DOMAIN_ENV
    }
    env |= {
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "GX_ANALYTICS_ENABLED": "false",
        "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.invalid",
        "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.invalid",
    }  # fmt: skip
    project = Repo(root, env)
    project.run("git", "init", "--quiet", "--initial-branch=main")
    project.run("git", "add", "--all")
    project.run("git", "commit", "--quiet", "--message", "copy")
    return project


def on_its_own_code(copy: Repo) -> Repo:
    """``copy`` running its own code and its own domain room, not the installed package's
    and not ``CHURN_DOMAIN``'s: a fork as its owner runs it."""
    env = {k: v for k, v in copy.env.items() if k != DOMAIN_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(copy.root / "src"), str(copy.root)])
    return Repo(copy.root, env)
