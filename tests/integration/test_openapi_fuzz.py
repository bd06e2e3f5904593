"""Property-based fuzzing of the service against its own OpenAPI document.

Schemathesis (its CLI, against the real server) generates valid and invalid
requests for every operation and checks that none gets a 5xx and that every
response matches the schema. Bounded: a fixed number of examples per
operation and a fixed seed, so a failure can be replayed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Server

pytestmark = pytest.mark.integration
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)


def test_no_server_errors_and_responses_match_the_schema(server: Server, tmp_path: Path) -> None:
    result = subprocess.run(
        [
            SCHEMATHESIS, "run", f"{server.url}/openapi.json",
            "--checks", CHECKS,
            "--max-examples", "50",
            "--seed", "1",
            "--request-timeout", "5",
            "--no-color",
            "--report-dir", str(tmp_path),
        ],
        cwd=tmp_path,  # schemathesis keeps a replay cache in its working directory
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout or "passed" in result.stdout
