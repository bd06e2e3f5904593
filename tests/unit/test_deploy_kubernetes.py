"""The deploy script's Kubernetes target (deploy/targets/kubernetes.sh), run by
deploy/deploy.sh against a recording `kubectl` (tests/support/fake_kubectl.py):
the exact commands of a deploy, a switch and a rollback, and that a colour
that never gets ready, or fails its smoke test, never gets the traffic.
No cluster: what a real API server does with these commands is not tested here
(docs/deploy.md says what was and was not validated)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import fake_kubectl
from tests.support.paths import REPO

BASH = shutil.which("bash") or "/bin/bash"
OVERLAYS = REPO / "deploy" / "kubernetes" / "overlays"
OVERLAY = "staging"
NAME = fake_kubectl.NAME
OLD = "registry.invalid/team/serving@sha256:" + "1" * 64
NEW = "registry.invalid/team/serving@sha256:" + "2" * 64
MODEL_SHA = "ab" * 32
READY_TIMEOUT = "7"


def overlay_namespace(overlay: str) -> str:
    config = yaml.safe_load((OVERLAYS / overlay / "kustomization.yaml").read_text())
    namespace: str = config["namespace"]
    return namespace


NAMESPACE = overlay_namespace(OVERLAY)


def k(*args: str) -> list[str]:
    """A kubectl call as the target makes it (its namespace first)."""
    return ["kubectl", "--namespace", NAMESPACE, *args]


def smoke(port_of: str) -> list[str]:
    port = fake_kubectl.PORTS[port_of]
    return ["churn", "smoke", f"http://127.0.0.1:{port}", "--ready-timeout", READY_TIMEOUT]


def forward(service: str) -> list[str]:
    return k("port-forward", service, ":80", "--address", "127.0.0.1")


@dataclass
class Cluster:
    """The stand-ins on PATH, their log and the state they answer from."""

    bin_dir: Path
    log: Path
    state_file: Path

    def set(self, selector: str, **deployments: tuple[int, str]) -> None:
        state = {
            "selector": selector,
            "hpa_min": 2,
            "deployments": {
                slot: {"replicas": size, "image": image}
                for slot, (size, image) in deployments.items()
            },
        }
        self.state_file.write_text(json.dumps(state))

    @property
    def state(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.state_file.read_text())
        return found

    def calls(self) -> list[list[str]]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        self.log.write_text("")
        clean = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("KUBE", "FAKE_", "DEPLOY_", "EXPECT_", "CHURN"))
        }
        return subprocess.run(
            [BASH, str(REPO / "deploy" / "deploy.sh"), *args],
            env={
                **clean,
                "PATH": f"{self.bin_dir}{os.pathsep}{clean['PATH']}",
                "DEPLOY_TARGET": "kubernetes",
                "KUBE_OVERLAY": OVERLAY,
                "CHURN": str(self.bin_dir / "churn"),
                "EXPECT_SHA256": MODEL_SHA,
                "READY_TIMEOUT": READY_TIMEOUT,
                "SWITCH_TIMEOUT": "3",
                "FAKE_LOG": str(self.log),
                "FAKE_STATE": str(self.state_file),
                **env,
            },
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=120,
            check=False,
        )


def stand_ins_running(bin_dir: Path) -> list[int]:
    """Processes still running a stand-in (a port-forward left behind)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes()
            except OSError:
                continue
            if str(bin_dir).encode() in cmdline:
                found.append(int(proc.name))
    return found


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = Path(fake_kubectl.__file__).read_text()
    for tool in ("kubectl", "churn"):
        path = bin_dir / tool
        path.write_text(f"#!{sys.executable}\n{script}")
        path.chmod(0o755)
    found = Cluster(bin_dir, tmp_path / "calls.log", tmp_path / "state.json")
    found.set("none", blue=(0, "placeholder"), green=(0, "placeholder"))
    yield found
    assert stand_ins_running(bin_dir) == [], "a kubectl port-forward outlived deploy.sh"


def patch_deployment(slot: str, replicas: int, image: str) -> list[str]:
    body = {
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "serving",
                            "image": image,
                            "env": [{"name": "CHURN_MODEL_SHA256", "value": MODEL_SHA}],
                        }
                    ]
                }
            },
        }
    }
    return k(
        "patch", "deployment", f"{NAME}-{slot}", "--type", "strategic", "--patch", json.dumps(body)
    )


def normalised(calls: list[list[str]]) -> list[list[str]]:
    """JSON patches compared as values, not as spellings."""
    out = []
    for call in calls:
        at = call.index("--patch") + 1 if "--patch" in call else len(call)
        value = [json.dumps(json.loads(call[at]), separators=(",", ":"))] if at < len(call) else []
        out.append([*call[:at], *value])
    return out


REPLICAS = "jsonpath={.spec.replicas}"
SELECTOR = "jsonpath={.spec.selector.slot}"
IMAGE_PATH = (
    'jsonpath={.spec.replicas} {.spec.template.spec.containers[?(@.name=="serving")].image}'
)
ENDPOINTS = 'jsonpath={range .items[*].endpoints[*]}{.targetRef.name}{"\\n"}{end}'


def live() -> list[str]:
    return k("get", "service", NAME, "-o", SELECTOR)


def replicas(slot: str) -> list[str]:
    return k("get", "deployment", f"{NAME}-{slot}", "-o", REPLICAS)


def switch(slot: str) -> list[list[str]]:
    return [
        k(
            "patch",
            "service",
            NAME,
            "--type",
            "merge",
            "--patch",
            json.dumps({"spec": {"selector": {"slot": slot}}}, separators=(",", ":")),
        ),
        k("get", "endpointslices", "-l", f"kubernetes.io/service-name={NAME}", "-o", ENDPOINTS),
    ]


def prepare() -> list[list[str]]:
    return [
        k("get", "namespace", NAMESPACE, "-o", "name"),
        k("apply", "-k", str(OVERLAYS / OVERLAY)),
        live(),
    ]


def start(slot: str, size: int, image: str, live_slot: str | None) -> list[list[str]]:
    return [
        live(),
        *([replicas(live_slot)] if live_slot else []),
        k("get", "hpa", f"{NAME}-{slot}", "-o", "jsonpath={.spec.minReplicas}"),
        patch_deployment(slot, size, image),
        k("rollout", "status", f"deployment/{NAME}-{slot}", "--timeout", f"{READY_TIMEOUT}s"),
    ]


def with_sha(call: list[str]) -> list[str]:
    return [*call, "--expect-sha256", MODEL_SHA]


def test_the_default_namespace_is_each_overlays() -> None:
    target = (REPO / "deploy" / "targets" / "kubernetes.sh").read_text()
    assert "KUBE_NAMESPACE=${KUBE_NAMESPACE:-churn-$KUBE_OVERLAY}" in target
    for overlay in sorted(p.name for p in OVERLAYS.iterdir()):
        assert overlay_namespace(overlay) == f"churn-{overlay}"


def deploy_calls(slot: str, size: int, image: str, live_slot: str | None) -> list[list[str]]:
    """A whole deploy to ``slot``: start it, smoke it directly, size both colours,
    switch, smoke the public Service."""
    other = "green" if slot == "blue" else "blue"
    return [
        *prepare(),
        *start(slot, size, image, live_slot=live_slot),
        forward(f"service/{NAME}-{slot}"),
        with_sha(smoke(f"service/{NAME}-{slot}")),
        replicas(other),
        replicas(slot),
        *switch(slot),
        forward(f"service/{NAME}"),
        forward(f"service/{NAME}"),
        with_sha(smoke(f"service/{NAME}")),
    ]


def test_first_deploy_starts_blue_at_the_hpa_minimum_then_switches(cluster: Cluster) -> None:
    result = cluster.run("deploy", OLD)

    assert result.returncode == 0, result.stderr
    minimum = cluster.state["hpa_min"]
    assert normalised(cluster.calls()) == normalised(
        deploy_calls("blue", minimum, OLD, live_slot=None)
    )
    assert cluster.state["selector"] == "blue"


def test_a_deploy_sizes_the_new_colour_like_the_live_one_and_keeps_the_old(
    cluster: Cluster,
) -> None:
    live_size = cluster.state["hpa_min"] + 3
    cluster.set("blue", blue=(live_size, OLD), green=(0, "placeholder"))

    result = cluster.run("deploy", NEW)

    assert result.returncode == 0, result.stderr
    assert normalised(cluster.calls()) == normalised(
        deploy_calls("green", live_size, NEW, live_slot="blue")
    )
    state = cluster.state
    assert state["selector"] == "green"
    assert state["deployments"]["blue"] == {"replicas": live_size, "image": OLD}, "old colour kept"
    assert "live: green" in result.stdout


def test_rollback_scales_the_old_colour_back_up_before_it_gets_the_traffic(
    cluster: Cluster,
) -> None:
    # The old colour's HPA shrank it while it was idle.
    live_size, shrunk = 6, 2
    cluster.set("green", blue=(shrunk, OLD), green=(live_size, NEW))

    result = cluster.run("rollback")

    assert result.returncode == 0, result.stderr
    image = k("get", "deployment", f"{NAME}-blue", "-o", IMAGE_PATH)
    assert normalised(cluster.calls()) == normalised(
        [
            live(),
            image,
            image,
            forward(f"service/{NAME}-blue"),
            smoke(f"service/{NAME}-blue"),
            replicas("green"),
            replicas("blue"),
            k("scale", f"deployment/{NAME}-blue", "--replicas", str(live_size)),
            k("rollout", "status", f"deployment/{NAME}-blue", "--timeout", f"{READY_TIMEOUT}s"),
            *switch("blue"),
            forward(f"service/{NAME}"),
            smoke(f"service/{NAME}"),
        ]
    )
    assert cluster.state["selector"] == "blue"
    assert cluster.state["deployments"]["blue"]["replicas"] == live_size


def service_patches(calls: list[list[str]]) -> list[list[str]]:
    return [call for call in calls if call[3:5] == ["patch", "service"]]


def test_a_colour_that_never_gets_ready_never_gets_the_traffic(cluster: Cluster) -> None:
    cluster.set("blue", blue=(3, OLD), green=(0, "placeholder"))

    result = cluster.run("deploy", NEW, FAKE_NEVER_READY="green")

    assert result.returncode == 1
    assert (
        f"error: the green colour was not ready within {READY_TIMEOUT}s: traffic stays on blue"
        in (result.stderr)
    )
    assert service_patches(cluster.calls()) == []
    assert not any(call[0] == "churn" for call in cluster.calls()), (
        "no smoke test of a colour not ready"
    )
    assert cluster.state["selector"] == "blue"


def test_a_colour_that_fails_its_smoke_test_never_gets_the_traffic(cluster: Cluster) -> None:
    cluster.set("blue", blue=(3, OLD), green=(0, "placeholder"))

    result = cluster.run("deploy", NEW, FAKE_SMOKE_FAIL="green")

    assert result.returncode == 1
    assert "error: the green slot failed its smoke test: traffic stays on blue" in result.stderr
    assert service_patches(cluster.calls()) == []
    assert cluster.state["selector"] == "blue"


@pytest.mark.parametrize("gone", ["scaled to zero", "deleted"])
def test_rollback_without_the_old_colour_says_so(cluster: Cluster, gone: str) -> None:
    if gone == "deleted":
        cluster.set("green", green=(3, NEW))
    else:
        cluster.set("green", blue=(0, OLD), green=(3, NEW))

    result = cluster.run("rollback")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: the blue slot does not exist: nothing to roll back to"
    )
    assert service_patches(cluster.calls()) == []
    assert cluster.state["selector"] == "green"


def test_an_image_by_tag_is_refused(cluster: Cluster) -> None:
    result = cluster.run("deploy", "registry.invalid/team/serving:latest")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "error: the kubernetes target deploys images by digest (REPOSITORY@sha256:...), "
        "not 'registry.invalid/team/serving:latest'"
    )
    assert not any(call[3:4] == ["patch"] for call in cluster.calls())


def test_nothing_deployed_yet_is_not_a_live_colour(cluster: Cluster) -> None:
    result = cluster.run("rollback")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: nothing is deployed"
