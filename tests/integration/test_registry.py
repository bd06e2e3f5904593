"""The pipeline against a real MLflow tracking server, and the registry flow with aliases.

The server runs as `make mlflow-server` runs it: a SQLite store, artifacts
proxied to an S3 bucket (moto on 127.0.0.1), one worker, no job runner. The
clients get no S3 credentials: every artifact goes through the server.

The tests share one copy of the project and one server and run in file order:
v1 is trained by `dvc repro` and becomes the first champion; v2 (same
parameters, clean work tree) is refused under stricter limits, then promoted;
v3 (a worse model) is refused against v2; rollback restores v1. The last two
tests need no server: an unreachable one, with and without the local fallback.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest
import yaml

from churn.core.artifacts import CARD_FILE, MODEL_FILE, ONNX_FILE, RUN_RECORD, RunRecord
from churn.core.contract import Contract
from churn.core.domain import Domain
from churn.core.params import Params
from churn.registry.tracking import TrackingSettings
from tests.support.cli import PLAIN_OUTPUT
from tests.support.params import (
    HEADROOM,
    limit_problem,
    nudged,
    overridden,
    regression_problem,
    with_limit,
    write_params,
)
from tests.support.project import Repo, copy_project
from tests.support.servers import BIN, S3Server, Server, free_port, stop_process

pytestmark = pytest.mark.integration

# The registered model's default name (the copy runs without CHURN_* settings).
MODEL = str(TrackingSettings.model_fields["registered_model"].default)
CHAMPION_URI = f"models:/{MODEL}@champion"
LINEAGE = ("git_commit", "git_dirty", "dvc_lock_sha256", "train_data_md5")
# measured ~14 s on an idle 2-core machine; leave room for a loaded one
SERVER_START_TIMEOUT_S = 120
# a refused connection fails in ~3 s, Python and MLflow imports included
FAIL_FAST_S = 20


@dataclass
class MlflowServer:
    url: str
    bucket: str
    process: subprocess.Popen[str]
    log_file: Path
    start_s: float


def start_mlflow_server(s3: S3Server, bucket: str, workdir: Path) -> MlflowServer:
    """`mlflow server` as `make mlflow-server` starts it; returns once /health answers."""
    port = free_port()
    log = workdir / "mlflow-server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_"))}
    env |= s3.env | {
        "MLFLOW_S3_ENDPOINT_URL": s3.endpoint_url,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    command = [
        str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
        "--backend-store-uri", f"sqlite:///{workdir / 'mlflow-server.db'}",
        "--artifacts-destination", f"s3://{bucket}/mlflow",
    ]  # fmt: skip
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = started + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlflow server exited {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return MlflowServer(url, bucket, process, log, time.monotonic() - started)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    stop_process(process)
    raise RuntimeError(f"mlflow server not healthy within {SERVER_START_TIMEOUT_S} s")


@pytest.fixture(scope="module")
def mlflow_server(
    s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    bucket = s3_server.create_bucket(f"mlflow-{uuid.uuid4().hex[:8]}")
    server = start_mlflow_server(s3_server, bucket, tmp_path_factory.mktemp("mlflow-server"))
    yield server
    stop_process(server.process)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The project in a git repository, prepared and validated (nothing tracked yet).

    Its environment has no S3 credentials: clients reach artifacts through the server.
    """
    repo = copy_project(tmp_path_factory.mktemp("project"))
    env = {k: v for k, v in repo.env.items() if not k.startswith("AWS_")}
    repo = replace(repo, env=env | PLAIN_OUTPUT)
    repo.dvc("repro", "validate")
    return repo


def with_env(repo: Repo, **env: str) -> Repo:
    return replace(repo, env=repo.env | env)


@pytest.fixture(scope="module")
def tracked(project: Repo, mlflow_server: MlflowServer) -> Repo:
    """The project with MLFLOW_TRACKING_URI pointing at the server."""
    return with_env(project, MLFLOW_TRACKING_URI=mlflow_server.url)


def churn(repo: Repo, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return repo.run(str(BIN / "churn"), *args, check=check)


def train_and_evaluate(repo: Repo, params: str = "params.yaml") -> RunRecord:
    """The two stages by hand (as `dvc repro` runs them), with a given parameters file."""
    churn(
        repo, "train", "--train", "data/prepared/train.csv",
        "--validation-report", "reports/validation.json", "--model-dir", "models",
        "--params", params,
    )  # fmt: skip
    churn(
        repo, "evaluate", "--test", "data/prepared/test.csv", "--model-dir", "models",
        "--metrics", "metrics.json", "--plots-dir", "plots", "--params", params,
    )  # fmt: skip
    return RunRecord.read(repo.root / RUN_RECORD)


def aliases(server: MlflowServer) -> dict[str, str]:
    import mlflow

    model = mlflow.MlflowClient(tracking_uri=server.url).get_registered_model(MODEL)
    return {alias: str(version) for alias, version in model.aliases.items()}


def version_tags(server: MlflowServer, version: str) -> dict[str, str]:
    import mlflow

    tags: dict[str, str] = (
        mlflow.MlflowClient(tracking_uri=server.url).get_model_version(MODEL, version).tags
    )
    return tags


def held_out(server: MlflowServer, version: str, metric: str) -> float:
    import mlflow

    mlflow_client = mlflow.MlflowClient(tracking_uri=server.url)
    run_id = mlflow_client.get_model_version(MODEL, version).run_id
    assert run_id is not None
    value: float = mlflow_client.get_run(run_id).data.metrics[f"test_{metric}"]
    return value


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git(repo: Repo, *args: str) -> str:
    return repo.run("git", *args).stdout.strip()


# -- the pipeline logs to the server --------------------------------------------------


def test_the_pipeline_logs_to_the_server_with_lineage_tags(
    tracked: Repo, mlflow_server: MlflowServer, params: Params, contract: Contract, tmp_path: Path
) -> None:
    import mlflow
    from mlflow.models import Model

    tracked.dvc("repro")
    record = RunRecord.read(tracked.root / RUN_RECORD)
    assert (record.tracking_uri, record.registered_model, record.version) == (
        mlflow_server.url,
        MODEL,
        "1",
    )
    mlflow_client = mlflow.MlflowClient(tracking_uri=mlflow_server.url)
    run = mlflow_client.get_run(record.run_id)
    metrics = json.loads((tracked.root / "metrics.json").read_text())
    card = json.loads((tracked.root / "models" / CARD_FILE).read_text())
    assert run.data.params["estimator"] == params.train.estimator
    for name, value in metrics.items():
        assert run.data.metrics[f"test_{name}"] == value, name
    assert run.data.metrics["cv_roc_auc"] == card["metrics"]["cv_roc_auc"]
    # Lineage: the commit, and the training data by the hash DVC keys it by.
    tags = run.data.tags
    assert tags["git_commit"] == git(tracked, "rev-parse", "HEAD")
    assert tags["git_dirty"] in {"true", "false"}
    assert len(tags["dvc_lock_sha256"]) == 64
    lock = yaml.safe_load((tracked.root / "dvc.lock").read_text())
    [train_dep] = [d for d in lock["stages"]["train"]["deps"] if d["path"].endswith("train.csv")]
    assert tags["train_data_md5"] == train_dep["md5"]
    md5 = tags["train_data_md5"]
    assert (tracked.root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]).is_file()
    # The same tags on the registered version, which `train` made the challenger.
    assert {k: version_tags(mlflow_server, "1")[k] for k in LINEAGE} == {
        k: tags[k] for k in LINEAGE
    }
    assert aliases(mlflow_server) == {"challenger": "1"}
    # The logged model (its MLmodel file, read back through the server) has the signature.
    logged = mlflow_client.get_logged_model(record.model_uri.removeprefix("models:/"))
    mlmodel = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{logged.artifact_location}/MLmodel",
        tracking_uri=mlflow_server.url,
        dst_path=str(tmp_path),
    )
    signature = Model.load(mlmodel).signature
    assert signature is not None
    assert signature.inputs.input_names() == list(contract.feature_names)


def test_artifacts_are_stored_in_the_s3_bucket(
    tracked: Repo, mlflow_server: MlflowServer, s3_server: S3Server
) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        aws_access_key_id=s3_server.env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=s3_server.env["AWS_SECRET_ACCESS_KEY"],
        region_name=s3_server.env["AWS_DEFAULT_REGION"],
    )
    listed = s3.list_objects_v2(Bucket=mlflow_server.bucket, Prefix="mlflow/")
    keys = {item["Key"] for item in listed["Contents"]}
    run_id = RunRecord.read(tracked.root / RUN_RECORD).run_id
    run_prefix = next(k for k in keys if f"/{run_id}/artifacts/" in k).split("/artifacts/")[0]
    for name in (f"serving/{ONNX_FILE}", f"serving/{CARD_FILE}", "plots/roc.png"):
        assert f"{run_prefix}/artifacts/{name}" in keys, name
    for name in (MODEL_FILE, "MLmodel", "serving_input_example.json"):
        assert any(k.startswith("mlflow/") and k.endswith(f"/artifacts/{name}") for k in keys), name
    stored = s3.get_object(
        Bucket=mlflow_server.bucket, Key=f"{run_prefix}/artifacts/serving/{ONNX_FILE}"
    )
    assert sha256(stored["Body"].read()) == sha256(
        (tracked.root / "models" / ONNX_FILE).read_bytes()
    )


# -- promote and roll back -------------------------------------------------------------


def test_the_first_champion_is_held_to_the_limits_only(
    tracked: Repo, mlflow_server: MlflowServer, params: Params
) -> None:
    result = churn(tracked, "promote")
    assert f"GATE PASSED ({len(params.gate)} metrics, no baseline yet)" in result.stdout
    assert f"PROMOTED {MODEL} v1 to champion (was: none)" in result.stdout
    assert aliases(mlflow_server) == {"champion": "1"}  # no longer a challenger
    tags = version_tags(mlflow_server, "1")
    assert "promoted_at" in tags
    assert "previous_champion" not in tags
    again = churn(tracked, "promote")
    assert again.stdout.strip() == "nothing to promote: no version has the challenger alias"


def test_a_version_is_refused_under_stricter_limits_and_promoted_under_the_real_ones(
    tracked: Repo, mlflow_server: MlflowServer, params: Params
) -> None:
    git(tracked, "add", "--all")
    git(tracked, "commit", "--quiet", "--allow-empty", "--message", "v1 reproduced")
    record = train_and_evaluate(tracked)
    assert record.version == "2"
    # Trained from a clean tree: the tags name exactly this commit and lock file.
    tags = version_tags(mlflow_server, "2")
    assert tags["git_commit"] == git(tracked, "rev-parse", "HEAD")
    assert tags["git_dirty"] == "false"
    assert tags["dvc_lock_sha256"] == sha256((tracked.root / "dvc.lock").read_bytes())

    metric, rule = next(iter(params.gate.items()))
    value = held_out(mlflow_server, "2", metric)
    limit = round(nudged(rule, value, HEADROOM), 4)  # just out of the model's reach
    write_params(with_limit(params, metric, limit), tracked.root / "strict.yaml")
    refused = churn(tracked, "promote", "--params", "strict.yaml", check=False)
    assert refused.returncode == 1, refused.stderr
    strict_rule = rule.model_copy(update={"limit": limit})
    assert limit_problem(metric, strict_rule, value) in refused.stdout
    assert f"REFUSED: {MODEL} v2 is not promoted; champion stays v1" in refused.stdout
    assert aliases(mlflow_server) == {"champion": "1", "challenger": "2"}

    # What CI promotes: the version this checkout's models/ was registered as.
    promoted = churn(tracked, "promote", "--run-file", str(RUN_RECORD))
    assert f"GATE PASSED ({len(params.gate)} metrics, against champion v1)" in promoted.stdout
    assert f"PROMOTED {MODEL} v2 to champion (was: v1)" in promoted.stdout
    assert aliases(mlflow_server) == {"champion": "2", "previous_champion": "1"}
    assert version_tags(mlflow_server, "2")["previous_champion"] == "1"


def test_the_service_loads_the_promoted_champion_from_the_server(
    tracked: Repo, mlflow_server: MlflowServer, serve: Callable[..., Server]
) -> None:
    env = {"CHURN_MODEL_URI": CHAMPION_URI, "MLFLOW_TRACKING_URI": mlflow_server.url}
    # No model directory to fall back on: the model can only come from the registry.
    service = serve(Path(tempfile.mkdtemp()) / "absent", env)
    with service.client() as http:
        assert http.get("/ready").json() == {"status": "ready", "model_version": "2"}
        served = http.get("/model").json()
    card = json.loads((tracked.root / "models" / CARD_FILE).read_text())
    assert (served["source"], served["sha256"]) == (CHAMPION_URI, card["onnx_sha256"])


def test_a_worse_model_is_refused_against_the_champion(
    tracked: Repo, mlflow_server: MlflowServer, params: Params, domain: Domain
) -> None:
    assert domain.scenarios is not None and domain.scenarios.weaker_train
    weaker = overridden(params.train, domain.scenarios.weaker_train)
    write_params(params.model_copy(update={"train": weaker}), tracked.root / "worse.yaml")
    assert train_and_evaluate(tracked, "worse.yaml").version == "3"
    assert version_tags(mlflow_server, "3")["git_dirty"] == "true"  # worse.yaml is new

    refused = churn(tracked, "promote", check=False)
    assert refused.returncode == 1, refused.stderr
    cells = [line.split() for line in refused.stdout.splitlines()]
    rows = {row[0]: row for row in cells if row and row[0] in params.gate}
    failed = []
    for metric, rule in params.gate.items():
        new, old = held_out(mlflow_server, "3", metric), held_out(mlflow_server, "2", metric)
        regressed = rule.worsening(new, old) > rule.max_regression
        passed = rule.within_limit(new) and not regressed
        sign = ">=" if rule.higher_is_better else "<="
        verdict = "ok" if passed else "FAILED"
        limits = [sign, f"{rule.limit:g}", f"{rule.max_regression:g}"]
        assert rows[metric] == [metric, f"{new:.4f}", f"{old:.4f}", *limits, verdict]
        if regressed:
            assert regression_problem(metric, rule, new, old) in refused.stdout
        failed += [] if passed else [metric]
    assert failed, "the domain's weaker parameters did not give a worse model"
    assert f"REFUSED: {MODEL} v3 is not promoted; champion stays v2" in refused.stdout
    assert aliases(mlflow_server) == {
        "champion": "2",
        "previous_champion": "1",
        "challenger": "3",
    }


def test_rollback_restores_the_previous_champion_until_there_is_none(
    tracked: Repo, mlflow_server: MlflowServer, serve: Callable[..., Server]
) -> None:
    result = churn(tracked, "rollback")
    assert result.stdout.strip() == (
        f"ROLLED BACK {MODEL}: champion v2 -> v1; "
        "a further rollback would restore nothing (no earlier champion)"
    )
    assert aliases(mlflow_server) == {"champion": "1", "challenger": "3"}
    assert "rolled_back_at" in version_tags(mlflow_server, "2")
    env = {"CHURN_MODEL_URI": CHAMPION_URI, "MLFLOW_TRACKING_URI": mlflow_server.url}
    with serve(Path(tempfile.mkdtemp()) / "absent", env).client() as http:
        assert http.get("/ready").json()["model_version"] == "1"

    again = churn(tracked, "rollback", check=False)
    assert again.returncode == 2
    assert again.stderr.strip().splitlines() == [
        f"error: {MODEL} v1 is the first recorded champion: nothing to roll back to"
    ]
    assert aliases(mlflow_server)["champion"] == "1"


# -- no server --------------------------------------------------------------------------


def _train_to(repo: Repo, model_dir: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = churn(
        repo, "train", "--train", "data/prepared/train.csv",
        "--validation-report", "reports/validation.json", "--model-dir", str(model_dir),
        "--run-record", str(model_dir.parent / RUN_RECORD), check=False,
    )  # fmt: skip
    return result, time.monotonic() - started


def test_an_unreachable_server_fails_the_run_fast_before_training(
    project: Repo, tmp_path: Path
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there any more
    result, seconds = _train_to(with_env(project, MLFLOW_TRACKING_URI=url), tmp_path / "models")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: MLflow tracking server {url}: unreachable. Start it (make mlflow-server), "
        "correct MLFLOW_TRACKING_URI, or set CHURN_TRACKING_FALLBACK=local to log to "
        "sqlite:///mlflow.db"
    ]
    assert seconds < FAIL_FAST_S
    assert not (tmp_path / "models").exists()  # failed before fitting anything


def test_the_local_fallback_logs_to_sqlite_with_a_warning(project: Repo, tmp_path: Path) -> None:
    import mlflow

    url = f"http://127.0.0.1:{free_port()}"
    repo = with_env(project, MLFLOW_TRACKING_URI=url, CHURN_TRACKING_FALLBACK="local")
    result, _ = _train_to(repo, tmp_path / "models")
    assert result.returncode == 0, result.stderr
    assert (
        f"WARNING churn.registry.tracking: MLflow tracking server {url}: unreachable; "
        "CHURN_TRACKING_FALLBACK=local: logging this run and registering its model in "
        "sqlite:///mlflow.db instead"
    ) in result.stderr
    record = RunRecord.read(tmp_path / RUN_RECORD)
    assert record.tracking_uri == "sqlite:///mlflow.db"
    local = mlflow.MlflowClient(tracking_uri=f"sqlite:///{project.root / 'mlflow.db'}")
    assert local.get_run(record.run_id).data.tags["train_data_md5"]
    version = local.get_model_version_by_alias(MODEL, "challenger")
    assert (str(version.version), version.run_id) == (record.version, record.run_id)
