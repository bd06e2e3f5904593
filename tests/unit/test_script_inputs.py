"""Inputs of the Makefile and the deploy script are values, never code or paths out."""

from __future__ import annotations

import os
import subprocess

from tests.support.paths import REPO


def test_deploy_target_must_be_a_name_in_deploy_targets() -> None:
    env = {**os.environ, "DEPLOY_TARGET": "../.."}
    result = subprocess.run(
        ["bash", "deploy/deploy.sh", "status"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    known = sorted(p.stem for p in (REPO / "deploy" / "targets").glob("*.sh"))
    assert f"DEPLOY_TARGET '../..' is not a target name (one of: {' '.join(known)})" in (
        result.stderr + result.stdout
    )


def test_make_passes_a_variable_as_one_quoted_argument() -> None:
    value = "logs dir; touch pwned"
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "monitor", f"LOG_DIR={value}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert f'--log-dir "{value}"' in result.stdout
