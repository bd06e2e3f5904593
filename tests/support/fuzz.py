"""Schemathesis (its CLI) against a running service's own OpenAPI document.

It generates valid and invalid requests for every operation and checks that
none gets a 5xx and that every response matches the schema. Bounded: a
fixed number of examples per operation and a fixed seed, so a failure can
be replayed.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.servers import BIN

SCHEMATHESIS = str(BIN / "schemathesis")
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)


def fuzz(
    url: str, work: Path, *options: str, examples: int = 50, timeout_s: int = 5
) -> subprocess.CompletedProcess[str]:
    """``schemathesis run`` against ``url``/openapi.json; ``options`` select operations."""
    return subprocess.run(
        [
            SCHEMATHESIS, "run", f"{url}/openapi.json",
            *options,
            "--checks", CHECKS,
            "--max-examples", str(examples),
            "--seed", "1",
            "--request-timeout", str(timeout_s),
            "--no-color",
            "--report-dir", str(work),
        ],
        cwd=work,  # schemathesis keeps a replay cache in its working directory
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
