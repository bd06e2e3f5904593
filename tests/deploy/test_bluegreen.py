"""Blue/green deploys with the podman target, under load: no request may fail.

Runs the real thing: `deploy/deploy.sh` starts the serving image (built by
`make container-build`) in two podman containers behind HAProxy, all on
127.0.0.1. Selected with `-m container` (`make deploy-test`), because it
needs podman, HAProxy and the image; `make test` leaves it out.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from churn.core.contract import Contract
from tests.support.paths import REPO
from tests.support.servers import free_port

pytestmark = pytest.mark.container

DEPLOY = str(REPO / "deploy" / "deploy.sh")
IMAGE = os.environ.get("IMAGE", "localhost/churn-serving:latest")
LOAD_THREADS = 4


@dataclass
class Deployment:
    env: dict[str, str]
    public_url: str

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DEPLOY, *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def live(self) -> str:
        return httpx.get(f"{self.public_url}/health", timeout=5).headers["x-churn-slot"]


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    port, blue, green = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "DEPLOY_TARGET": "podman",
        "DEPLOY_STATE_DIR": str(tmp_path / "state"),
        "DEPLOY_NAME": f"churn-test-{os.getpid()}",
        "DEPLOY_PORT": str(port),
        "BLUE_PORT": str(blue),
        "GREEN_PORT": str(green),
        "READY_TIMEOUT": "60",
    }
    deployment = Deployment(env, f"http://127.0.0.1:{port}")
    yield deployment
    deployment.run("teardown")


@dataclass
class Load:
    """Threads that POST /predict through the router until stopped, counting outcomes."""

    url: str
    body: dict[str, object]  # the /predict request every thread sends
    stop: threading.Event = field(default_factory=threading.Event)
    statuses: Counter[str] = field(default_factory=Counter)
    slots: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _worker(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as client:  # keep-alive connections
            while not self.stop.is_set():
                try:
                    response = client.post("/predict", json=self.body)
                    with self.lock:
                        self.statuses[str(response.status_code)] += 1
                        self.slots[response.headers.get("x-churn-slot", "?")] += 1
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.errors.append(repr(exc))

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self._worker) for _ in range(LOAD_THREADS)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def test_deploy_switch_and_rollback_under_load_lose_no_request(
    deployment: Deployment, contract: Contract
) -> None:
    first = deployment.run("deploy", IMAGE)
    assert first.returncode == 0, first.stderr + first.stdout
    assert deployment.live() == "blue"

    with Load(deployment.public_url, contract.api_example()) as load:
        time.sleep(1)
        second = deployment.run("deploy", IMAGE)  # to green, beside blue
        assert second.returncode == 0, second.stderr + second.stdout
        assert deployment.live() == "green"
        time.sleep(1)
        back = deployment.run("rollback")
        assert back.returncode == 0, back.stderr + back.stdout
        assert deployment.live() == "blue"
        time.sleep(1)

    assert load.errors == [], load.errors[:5]
    assert set(load.statuses) == {"200"}, load.statuses
    # Both slots answered: the traffic really moved, and came back.
    assert load.slots["blue"] > 0 and load.slots["green"] > 0, load.slots
    print(f"requests through the switches: {load.statuses}, by slot: {dict(load.slots)}")
    status = deployment.run("status").stdout
    assert "blue   live" in status and "green  idle" in status, status


def test_a_slot_that_fails_its_smoke_test_never_gets_traffic(deployment: Deployment) -> None:
    assert deployment.run("deploy", IMAGE).returncode == 0
    # The same image, but the deploy expects another model: it must stop before the switch.
    refused = deployment.run("deploy", IMAGE, EXPECT_SHA256="0" * 64)
    assert refused.returncode == 1
    assert "the green slot failed its smoke test: traffic stays on blue" in refused.stderr
    assert deployment.live() == "blue"


def test_rollback_with_nothing_deployed_is_refused(deployment: Deployment) -> None:
    done = deployment.run("rollback")
    assert done.returncode == 1
    assert "nothing is deployed" in done.stderr
