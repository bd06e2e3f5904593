"""`churn smoke` against a real service: the check a deploy runs before and after a switch."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from churn.core.artifacts import CARD_FILE, ModelCard
from tests.support.models import TrainedModel
from tests.support.servers import CHURN, Server, free_port

pytestmark = pytest.mark.integration
API_KEY = "smoke-test-key-0123456789"


def smoke(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHURN, "smoke", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1", "TERM": "dumb", **(env or {})},
        check=False,
    )


def test_passes_on_the_model_of_the_card(server: Server, trained_model: TrainedModel) -> None:
    card = trained_model.directory / CARD_FILE
    done = smoke(server.url, "--card", str(card))
    assert done.returncode == 0, done.stderr
    assert ModelCard.read(card).onnx_sha256[:12] in done.stdout
    assert re.search(r"example record probability [01]\.[0-9]{4}$", done.stdout.strip())


def test_fails_when_another_model_is_served(server: Server) -> None:
    done = smoke(server.url, "--expect-sha256", "0" * 64)
    assert done.returncode == 1
    assert "expected 000000000000" in done.stderr
    assert "Traceback" not in done.stderr


def test_fails_in_bounded_time_when_nothing_listens() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    done = smoke(url, "--ready-timeout", "1")
    assert done.returncode == 1
    assert f"{url}/ready: not ready after 1 s" in done.stderr


def test_sends_the_api_key_from_the_environment(
    serve: Callable[..., Server], trained_model: TrainedModel
) -> None:
    server = serve(trained_model.directory, {"CHURN_API_KEY": API_KEY})
    refused = smoke(server.url)
    assert refused.returncode == 1
    assert "/predict answered HTTP 401" in refused.stderr
    accepted = smoke(server.url, env={"CHURN_API_KEY": API_KEY})
    assert accepted.returncode == 0, accepted.stderr


def test_unreadable_card_is_a_usage_error(server: Server, tmp_path: Path) -> None:
    done = smoke(server.url, "--card", str(tmp_path / "missing.json"))
    assert done.returncode == 2
    assert "missing.json" in done.stderr
