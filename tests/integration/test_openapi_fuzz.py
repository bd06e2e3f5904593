"""Property-based fuzzing of the service against its own OpenAPI document.

Schemathesis (`tests.support.fuzz`), against the real server, generates
valid and invalid requests for every operation and checks that none gets a
5xx and that every response matches the schema.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.fuzz import fuzz
from tests.support.servers import Server

pytestmark = pytest.mark.integration


def test_no_server_errors_and_responses_match_the_schema(server: Server, tmp_path: Path) -> None:
    result = fuzz(server.url, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout or "passed" in result.stdout
