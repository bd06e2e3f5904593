"""compose.yaml agrees with the project it runs (docs/stack.md).

`docker-compose config` (make compose-check) checks the file against the
compose schema; these tests check what no schema knows: the service's
settings, port and model path, that every variable is documented in
.env.example, that only loopback ports are published, and that the pieces
point at each other (Prometheus at the service, Grafana at Prometheus,
MLflow at the bucket).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from churn.serving.settings import ServingSettings
from tests.support.paths import REPO

COMPOSE_FILE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
SERVICE_PORT = 8000


def load_compose() -> dict[str, Any]:
    compose: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return compose


COMPOSE = load_compose()
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def env_example() -> dict[str, str]:
    """NAME=value lines of .env.example, including commented-out ones (`# NAME=`)."""
    found = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if match := re.fullmatch(r"#?\s*([A-Z_][A-Z0-9_]*)=(.*)", line.strip()):
            found[match.group(1)] = match.group(2)
    return found


def resolve(value: str) -> str:
    """A value as compose resolves it with no .env and an empty environment."""
    return VARIABLE.sub(lambda m: m.group(3) or "" if m.group(2) in {":-", "-"} else "", value)


def environment(service: str) -> dict[str, str | None]:
    env = SERVICES[service].get("environment", {})
    assert isinstance(env, dict), f"{service}: write environment as a mapping"
    return {key: None if value is None else resolve(str(value)) for key, value in env.items()}


def published(service: str) -> list[tuple[str, str, str]]:
    """(host address, host port, container port) of each published port."""
    ports = []
    for entry in SERVICES[service].get("ports", []):
        parts = resolve(str(entry)).split(":")
        assert len(parts) == 3, f"{service}: {entry!r} must name the host address"
        ports.append((parts[0], parts[1], parts[2].split("/")[0]))
    return ports


def dockerfile(service: str) -> Path | None:
    build = SERVICES[service].get("build")
    if build is None:
        return None
    path: Path = REPO / build["context"] / build.get("dockerfile", "Dockerfile")
    return path


def strings(node: Any) -> list[str]:
    """Every string in a parsed YAML document (keys and values; not comments)."""
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in strings(key) + strings(value)]
    if isinstance(node, list):
        return [text for item in node for text in strings(item)]
    return [node] if isinstance(node, str) else []


def test_every_variable_is_in_env_example_with_the_same_default() -> None:
    defaults = {
        match.group(1): match.group(3) or ""
        for text in strings(COMPOSE)
        for match in VARIABLE.finditer(text)
    }
    # Variables passed through without a value (`CHURN_API_KEY:`) count too.
    passed = {
        name
        for service in SERVICES
        for name, value in SERVICES[service].get("environment", {}).items()
        if value is None
    }
    documented = env_example()
    assert defaults.keys() | passed == {
        name for name in documented if not name.startswith("COMPOSE_")
    }
    for name, default in defaults.items():
        assert documented[name] == default, f"{name}: compose.yaml and .env.example differ"


def test_only_loopback_ports_are_published() -> None:
    for service in SERVICES:
        for address, _, _ in published(service):
            assert address == "127.0.0.1", service
    assert "ports" not in SERVICES["postgres"]


def test_the_service_settings_are_churn_settings_and_valid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = environment("churn-serving")
    fields = {f"CHURN_{name.upper()}" for name in ServingSettings.model_fields}
    assert {name for name in env if name.startswith("CHURN_")} <= fields
    assert set(env) <= fields, "the service reads CHURN_* variables only"
    for name in fields:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        if value is not None:
            monkeypatch.setenv(name, value)
    settings = ServingSettings()  # raises on a value the service would refuse
    assert settings.model_dir == Path("/app/models")


def test_the_service_port_and_model_dir_match_the_dockerfile() -> None:
    path = dockerfile("churn-serving")
    assert path == REPO / "Dockerfile"
    text = path.read_text()
    assert f"EXPOSE {SERVICE_PORT}" in text
    assert f'"--port", "{SERVICE_PORT}"' in text
    assert f"CHURN_MODEL_DIR={environment('churn-serving')['CHURN_MODEL_DIR']}" in text
    assert [container for _, _, container in published("churn-serving")] == [str(SERVICE_PORT)]


def test_images_are_pinned() -> None:
    for name, service in SERVICES.items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"


def test_what_others_wait_for_has_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            if spec["condition"] != "service_healthy":
                continue
            path = dockerfile(dependency)
            in_image = path is not None and "\nHEALTHCHECK " in path.read_text()
            assert "healthcheck" in SERVICES[dependency] or in_image, dependency


def test_bind_mounts_exist() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (REPO / source).exists(), f"{name}: {source}"
            else:
                assert source in COMPOSE["volumes"], f"{name}: undeclared volume {source}"


def test_mlflow_server_is_the_version_the_project_locks() -> None:
    path = dockerfile("mlflow")
    assert path is not None
    pinned = re.search(r"^ARG MLFLOW_VERSION=(\S+)$", path.read_text(), re.MULTILINE)
    assert pinned is not None
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    (locked,) = (p["version"] for p in lock["package"] if p["name"] == "mlflow")
    assert pinned.group(1) == locked
    assert SERVICES["mlflow"]["image"].endswith(f":{locked}")


def test_mlflow_writes_artifacts_to_the_bucket_the_init_job_creates() -> None:
    command = SERVICES["mlflow"]["command"]
    (destination,) = (arg.split("=", 1)[1] for arg in command if "--artifacts-destination" in arg)
    bucket = re.fullmatch(r"s3://([^/]+)/.*", destination)
    assert bucket is not None
    assert f"local/{bucket.group(1)}" in " ".join(SERVICES["create-bucket"]["command"])
    endpoint = environment("mlflow")["MLFLOW_S3_ENDPOINT_URL"]
    assert endpoint == "http://minio:9000"
    assert list(published("minio")[0]) == ["127.0.0.1", "9000", "9000"]


def test_prometheus_scrapes_the_service_and_grafana_reads_prometheus() -> None:
    prometheus = yaml.safe_load((REPO / "deploy" / "prometheus" / "prometheus.yml").read_text())
    (job,) = (job for job in prometheus["scrape_configs"] if job["job_name"] == "churn-serving")
    assert job["static_configs"][0]["targets"] == [f"churn-serving:{SERVICE_PORT}"]
    datasources = REPO / "deploy" / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
    (source,) = yaml.safe_load(datasources.read_text())["datasources"]
    container_port = published("prometheus")[0][2]
    assert source["url"] == f"http://prometheus:{container_port}"
    home = environment("grafana")["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home is not None
    name = Path(home).name
    assert (REPO / "deploy" / "grafana" / "dashboards" / name).is_file()
