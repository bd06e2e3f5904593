"""The whole pipeline in a temporary copy of the repository, with real DVC,
Great Expectations and MLflow (local SQLite store), as a fresh clone runs it.

The tests in this module share one copy and run in file order: the first
reproduces the pipeline, the later ones build on that state.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from churn.core.artifacts import CARD_FILE, MODEL_FILE, RUN_RECORD, file_sha256
from churn.core.contract import Contract
from churn.core.data import read_csv
from churn.core.domain import Domain
from churn.core.errors import ModelError
from churn.core.params import Params, load_params
from churn.pipeline.summary import CV_LABEL, LABELS
from tests.support.bad_data import unknown
from tests.support.cli import PLAIN_OUTPUT
from tests.support.columns import free_categorical
from tests.support.params import (
    HEADROOM,
    dotted,
    flat,
    limit_problem,
    nudged,
    with_limit,
    write_params,
)
from tests.support.project import Repo, copy_project
from tests.support.servers import BIN

pytestmark = pytest.mark.integration
CHURN = str(BIN / "churn")
KILL_WAIT_S = 300  # train fits (with cross-validation) before it writes the model


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """A git repository holding the project's files as they are now, reproduced once."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    project = replace(project, env=project.env | PLAIN_OUTPUT)
    project.dvc("repro")
    return project


@pytest.fixture(scope="module")
def weaker(domain: Domain) -> dict[str, object]:
    """The domain's "worse model" parameters, as ``dvc exp run -S`` takes them."""
    assert domain.scenarios is not None and domain.scenarios.weaker_train
    return flat(domain.scenarios.weaker_train, "train.")


def _metrics(repo: Repo) -> dict[str, float]:
    metrics: dict[str, float] = json.loads((repo.root / "metrics.json").read_text())
    return metrics


def test_repro_builds_every_output(repo: Repo, params: Params) -> None:
    root = repo.root
    for path in ("data/prepared/train.csv", "data/prepared/test.csv", "plots/images/roc.png"):
        assert (root / path).stat().st_size > 0, path
    report = json.loads((root / "reports/validation.json").read_text())
    assert report["success"] is True
    assert report["statistics"]["failed"] == 0
    metrics = _metrics(repo)
    for metric, gate in params.gate.items():
        assert gate.within_limit(metrics[metric]), (metric, metrics[metric], gate)
    card = json.loads((root / "models" / CARD_FILE).read_text())
    assert card["sha256"] == file_sha256(root / "models" / MODEL_FILE)
    assert card["params"] == params.train.model_dump()
    for name in ("roc", "precision_recall", "confusion", "calibration", "feature_importance"):
        assert (root / "plots" / f"{name}.csv").is_file()
        assert (root / "plots" / "images" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_summary_shows_metrics_and_where_things_are(repo: Repo, params: Params) -> None:
    lines = repo.run(CHURN, "summary").stdout.splitlines()
    for metric, value in _metrics(repo).items():
        label = LABELS.get(metric, metric)
        assert any(
            line.strip().startswith(label) and line.endswith(f"  {value:.4f}") for line in lines
        ), metric
    cv = CV_LABEL.format(folds=params.train.cv_folds)
    assert any(line.strip().startswith(cv) for line in lines)
    assert any(line.startswith("MLflow:  sqlite:///mlflow.db") for line in lines)


def test_model_is_registered_in_mlflow_with_signature_and_example(
    repo: Repo, params: Params, contract: Contract, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.models import get_model_info

    run = json.loads((repo.root / RUN_RECORD).read_text())
    assert run["tracking_uri"] == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repo.root / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    version = client.get_model_version(run["registered_model"], run["version"])
    assert version.run_id == run["run_id"]
    logged = client.get_run(run["run_id"])
    assert logged.data.metrics["test_roc_auc"] == _metrics(repo)["roc_auc"]
    assert logged.data.params["estimator"] == params.train.estimator
    info = get_model_info(run["model_uri"])
    assert info.signature is not None
    assert info.signature.inputs.input_names() == list(contract.feature_names)
    assert info.saved_input_example_info is not None
    model = mlflow.get_logged_model(run["model_uri"].removeprefix("models:/"))
    artifacts = Path(model.artifact_location.removeprefix("file://"))
    assert (artifacts / "serving_input_example.json").is_file()


def test_service_loads_the_champion_from_the_registry(
    repo: Repo, contract: Contract, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from churn.serving import loader
    from churn.serving.settings import ServingSettings

    run = json.loads((repo.root / RUN_RECORD).read_text())
    card = json.loads((repo.root / "models" / CARD_FILE).read_text())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repo.root / 'mlflow.db'}")
    mlflow.MlflowClient().set_registered_model_alias(
        run["registered_model"], "champion", run["version"]
    )
    uri = f"models:/{run['registered_model']}@champion"
    loaded = loader.load(ServingSettings(model_uri=uri), contract)
    assert loaded.version == run["version"]
    assert loaded.sha256 == card["onnx_sha256"]
    assert loaded.source == uri
    assert loaded.drift_profile is not None  # logged with the ONNX file, for live drift
    with pytest.raises(ModelError, match="alias"):
        loader.load(
            ServingSettings(model_uri=f"models:/{run['registered_model']}@nobody"), contract
        )


def test_second_repro_runs_nothing(repo: Repo) -> None:
    result = repo.dvc("repro")
    assert "Running stage" not in result.stdout
    assert "Data and pipelines are up to date." in result.stdout
    assert "up to date" in repo.dvc("status").stdout


def test_a_forced_repro_gives_the_same_bytes_and_a_new_run(repo: Repo) -> None:
    """Every DVC output is a function of code, data and params: re-running every
    stage changes nothing `dvc.lock` records, while MLflow gets a new run."""
    tracked = ["dvc.lock", "metrics.json", "reports/validation.json"]
    tracked += [str(p.relative_to(repo.root)) for p in sorted((repo.root / "models").iterdir())]
    before = {path: file_sha256(repo.root / path) for path in tracked}
    run_before = json.loads((repo.root / RUN_RECORD).read_text())
    repo.dvc("repro", "--force")
    assert {path: file_sha256(repo.root / path) for path in tracked} == before
    run_after = json.loads((repo.root / RUN_RECORD).read_text())
    assert run_after["run_id"] != run_before["run_id"]
    assert run_after["model_sha256"] == run_before["model_sha256"]


def _stages_changed_by(repo: Repo, path: str) -> set[str]:
    """The stages `dvc status` says are out of date once ``path`` is edited (then restored)."""
    file = repo.root / path
    original = file.read_bytes()
    file.write_bytes(original + b"\n# an edit\n")
    try:
        status = repo.dvc("status", "--json").stdout
    finally:
        file.write_bytes(original)
    return set(json.loads(status or "{}"))


@pytest.mark.parametrize(
    "path",
    [
        "src/churn/cli/serving.py",  # another command group
        "src/churn/cli/app.py",  # the root that merges the groups
        "src/churn/serving/app.py",  # the service
        "src/churn/release/gate.py",  # release tooling
    ],
)
def test_code_that_is_no_stages_re_runs_nothing(repo: Repo, path: str) -> None:
    assert _stages_changed_by(repo, path) == set()


def test_a_stages_own_code_puts_that_stage_out_of_date(repo: Repo) -> None:
    assert _stages_changed_by(repo, "src/churn/pipeline/evaluate.py") == {"evaluate"}
    assert _stages_changed_by(repo, "src/churn/pipeline/validation.py") == {"validate"}
    # Shared by every stage: the machinery's core.
    assert _stages_changed_by(repo, "src/churn/core/data.py") == {
        "prepare",
        "validate",
        "train",
        "evaluate",
    }


def test_push_and_pull_through_a_remote(repo: Repo, tmp_path: Path) -> None:
    outputs = ["data/prepared/train.csv", "data/prepared/test.csv", f"models/{MODEL_FILE}"]
    before = {name: file_sha256(repo.root / name) for name in outputs}
    repo.dvc("remote", "add", "--local", "--default", "store", str(tmp_path / "remote"))
    repo.dvc("push")
    shutil.rmtree(repo.root / ".dvc" / "cache")
    for directory in ("data/prepared", "models", "plots/images"):
        shutil.rmtree(repo.root / directory)
    repo.dvc("pull")
    assert {name: file_sha256(repo.root / name) for name in outputs} == before
    assert "Data and pipelines are up to date." in repo.dvc("repro").stdout
    assert "Cache and remote 'store' are in sync" in repo.dvc("status", "--cloud").stdout


def test_bad_data_stops_the_pipeline_and_keeps_the_last_model(
    repo: Repo, contract: Contract
) -> None:
    raw = sorted((repo.root / "data" / "raw").glob("*.csv"))[0]
    model = repo.root / "models" / MODEL_FILE
    model_hash = file_sha256(model)
    good = raw.read_bytes()
    column = free_categorical(contract) or contract.categorical[-1]
    level = unknown(column.levels, "not-a-level")
    frame = read_csv(raw)
    frame.loc[frame.index[:3], column.name] = level
    frame.to_csv(raw, index=False)
    try:
        result = repo.dvc("repro", check=False)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert f"- {column.name}: one of {list(column.levels)}" in output
        assert repr(level) in output
        assert "Running stage 'train'" not in output
        assert file_sha256(model) == model_hash
    finally:
        raw.write_bytes(good)


def test_experiment_with_a_changed_parameter(
    repo: Repo, params: Params, weaker: dict[str, object]
) -> None:
    baseline = _metrics(repo)
    settings = [arg for key, value in weaker.items() for arg in ("--set-param", f"{key}={value}")]
    repo.dvc("exp", "run", *settings)
    shown = json.dumps(json.loads(repo.dvc("exp", "show", "--json").stdout))
    assert all(str(value) in shown for value in weaker.values())
    assert _metrics(repo) != baseline
    diff = json.loads(repo.dvc("params", "diff", "--json").stdout)["params.yaml"]
    for key, value in weaker.items():
        assert (diff[key]["old"], diff[key]["new"]) == (dotted(params, key), value)


def test_report_and_gate_against_the_committed_baseline(
    repo: Repo, params: Params, weaker: dict[str, object]
) -> None:
    """After the experiment above, the workspace differs from HEAD: report and gate on it."""
    baseline = json.loads(repo.run("git", "show", "HEAD:metrics.json").stdout)
    current = _metrics(repo)
    assert current != baseline
    repo.run(CHURN, "report", "--baseline", "HEAD", "--out", "reports/pr.md")
    text = (repo.root / "reports" / "pr.md").read_text()
    for metric in params.gate:
        old, new = baseline[metric], current[metric]
        assert f"| {metric} | {old:.4f} | {new:.4f} | {new - old:+.4f} |" in text
    for key, value in weaker.items():
        assert f"| `{key}` | {dotted(params, key)} | {value} |" in text
    gate = repo.run(CHURN, "gate", "--baseline", "HEAD", check=False)
    gates = load_params(repo.root / "params.yaml").gate
    broken = [
        metric
        for metric, rule in gates.items()
        if not rule.within_limit(current[metric])
        or rule.worsening(current[metric], baseline[metric]) > rule.max_regression
    ]
    assert gate.returncode == (1 if broken else 0), gate.stdout
    assert all(metric in gate.stdout for metric in broken)

    metric, rule = next(iter(params.gate.items()))
    limit = round(nudged(rule, current[metric], HEADROOM), 4)
    write_params(with_limit(params, metric, limit), repo.root / "strict.yaml")
    failing = repo.run(CHURN, "gate", "--baseline", "HEAD", "--params", "strict.yaml", check=False)
    assert failing.returncode == 1
    strict_rule = rule.model_copy(update={"limit": limit})
    assert limit_problem(metric, strict_rule, current[metric]) in failing.stdout
    unknown_base = repo.run(CHURN, "gate", "--baseline", "no-such-branch", check=False)
    assert unknown_base.returncode == 1  # fails closed
    assert "'no-such-branch' does not resolve to a commit here" in unknown_base.stdout


@pytest.mark.security
def test_a_killed_training_leaves_the_last_model_and_registers_nothing(repo: Repo) -> None:
    """SIGKILL while train writes the model: the previous model stays whole (it is
    swapped only when complete) and MLflow gets nothing (it is told only after).
    The next training clears the leftovers and writes the model."""
    stages = yaml.safe_load((repo.root / "dvc.yaml").read_text())["stages"]
    command = shlex.split(stages["train"]["cmd"])
    model_dir = repo.root / command[command.index("--model-dir") + 1]
    before = {p.name: file_sha256(p) for p in model_dir.iterdir()}
    record = (repo.root / RUN_RECORD).read_bytes()
    staging = f".{model_dir.name}.new-*"

    train = subprocess.Popen(
        [str(BIN / command[0]), *command[1:]],
        cwd=repo.root,
        env=repo.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + KILL_WAIT_S
        while not any(model_dir.parent.glob(staging)) and time.monotonic() < deadline:
            assert train.poll() is None, "train ended before it started writing the model"
            time.sleep(0.002)
    finally:
        train.kill()
        train.wait()
    assert any(model_dir.parent.glob(staging)), "never saw train write its staging folder"

    assert {p.name: file_sha256(p) for p in model_dir.iterdir()} == before
    assert (repo.root / RUN_RECORD).read_bytes() == record

    repo.run(str(BIN / command[0]), *command[1:])
    assert not any(model_dir.parent.glob(staging))
    assert {p.name: file_sha256(p) for p in model_dir.iterdir()} == before  # deterministic
    assert (repo.root / RUN_RECORD).read_bytes() != record  # a new run, registered
