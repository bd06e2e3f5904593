"""The whole pipeline in a temporary copy of the repository, with real DVC,
Great Expectations and MLflow (local SQLite store), as a fresh clone runs it.

The tests in this module share one copy and run in file order: the first
reproduces the pipeline, the later ones build on that state.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from churn.artifacts import CARD_FILE, MODEL_FILE, RUN_FILE, file_sha256
from churn.errors import ModelError
from churn.params import load_params
from tests.integration.conftest import BIN, Repo, copy_project

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """A git repository holding the project's files as they are now, reproduced once."""
    project = copy_project(tmp_path_factory.mktemp("project"))
    project.dvc("repro")
    return project


def _metrics(repo: Repo) -> dict[str, float]:
    metrics: dict[str, float] = json.loads((repo.root / "metrics.json").read_text())
    return metrics


def test_repro_builds_every_output(repo: Repo) -> None:
    root = repo.root
    for path in ("data/prepared/train.csv", "data/prepared/test.csv", "plots/images/roc.png"):
        assert (root / path).stat().st_size > 0, path
    report = json.loads((root / "reports/validation.json").read_text())
    assert report["success"] is True
    assert report["statistics"]["failed"] == 0
    metrics = _metrics(repo)
    assert metrics["roc_auc"] >= 0.84
    card = json.loads((root / "models" / CARD_FILE).read_text())
    assert card["sha256"] == file_sha256(root / "models" / MODEL_FILE)
    assert card["metrics"]["cv_roc_auc"] >= 0.84
    for name in ("roc", "precision_recall", "confusion", "calibration", "feature_importance"):
        assert (root / "plots" / f"{name}.csv").is_file()
        assert (root / "plots" / "images" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_summary_shows_metrics_and_where_things_are(repo: Repo) -> None:
    text = repo.run(str(BIN / "churn"), "summary").stdout
    assert f"ROC AUC                          {_metrics(repo)['roc_auc']:.4f}" in text
    assert "5-fold CV ROC AUC (train split)" in text
    assert "MLflow:  sqlite:///mlflow.db" in text


def test_model_is_registered_in_mlflow_with_signature_and_example(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.models import get_model_info

    run = json.loads((repo.root / "models" / RUN_FILE).read_text())
    assert run["tracking_uri"] == "sqlite:///mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repo.root / 'mlflow.db'}")
    client = mlflow.MlflowClient()
    version = client.get_model_version(run["registered_model"], run["version"])
    assert version.run_id == run["run_id"]
    logged = client.get_run(run["run_id"])
    assert logged.data.metrics["test_roc_auc"] == _metrics(repo)["roc_auc"]
    assert logged.data.params["estimator"] == "logistic_regression"
    info = get_model_info(run["model_uri"])
    assert info.signature is not None
    assert info.signature.inputs.input_names()[-1] == "PaymentMethod"
    assert info.saved_input_example_info is not None
    model = mlflow.get_logged_model(run["model_uri"].removeprefix("models:/"))
    artifacts = Path(model.artifact_location.removeprefix("file://"))
    assert (artifacts / "serving_input_example.json").is_file()


def test_service_loads_the_champion_from_the_registry(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from churn.serving import loader
    from churn.serving.settings import ServingSettings

    run = json.loads((repo.root / "models" / RUN_FILE).read_text())
    card = json.loads((repo.root / "models" / CARD_FILE).read_text())
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{repo.root / 'mlflow.db'}")
    mlflow.MlflowClient().set_registered_model_alias(
        run["registered_model"], "champion", run["version"]
    )
    uri = f"models:/{run['registered_model']}@champion"
    loaded = loader.load(ServingSettings(model_uri=uri))
    assert loaded.version == run["version"]
    assert loaded.sha256 == card["onnx_sha256"]
    assert loaded.source == uri
    assert loaded.drift_profile is not None  # logged with the ONNX file, for live drift
    with pytest.raises(ModelError, match="alias"):
        loader.load(ServingSettings(model_uri=f"models:/{run['registered_model']}@nobody"))


def test_second_repro_runs_nothing(repo: Repo) -> None:
    result = repo.dvc("repro")
    assert "Running stage" not in result.stdout
    assert "Data and pipelines are up to date." in result.stdout
    assert "up to date" in repo.dvc("status").stdout


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


def test_bad_data_stops_the_pipeline_and_keeps_the_last_model(repo: Repo) -> None:
    raw = repo.root / "data/raw/telco_churn.csv"
    model = repo.root / "models" / MODEL_FILE
    model_hash = file_sha256(model)
    good = raw.read_text()
    raw.write_text(good.replace(",Two year,", ",Weekly,", 3))
    try:
        result = repo.dvc("repro", check=False)
        assert result.returncode != 0
        output = result.stdout + result.stderr
        assert "- Contract: one of ['Month-to-month', 'One year', 'Two year']" in output
        assert "'Weekly'" in output
        assert "Running stage 'train'" not in output
        assert file_sha256(model) == model_hash
    finally:
        raw.write_text(good)


def test_experiment_with_a_changed_parameter(repo: Repo) -> None:
    baseline = _metrics(repo)["roc_auc"]
    repo.dvc("exp", "run", "--set-param", "train.logistic_regression.C=0.01")
    shown = json.loads(repo.dvc("exp", "show", "--json").stdout)
    assert "0.01" in json.dumps(shown)
    assert _metrics(repo)["roc_auc"] != baseline
    diff = json.loads(repo.dvc("params", "diff", "--json").stdout)
    change = diff["params.yaml"]["train.logistic_regression.C"]
    assert (change["old"], change["new"]) == (1.0, 0.01)


def test_report_and_gate_against_the_committed_baseline(repo: Repo) -> None:
    """After the experiment above, the workspace differs from HEAD: report and gate on it."""
    churn = str(BIN / "churn")
    baseline = json.loads(repo.run("git", "show", "HEAD:metrics.json").stdout)
    current = _metrics(repo)
    assert current["roc_auc"] != baseline["roc_auc"]
    repo.run(churn, "report", "--baseline", "HEAD", "--out", "reports/pr.md")
    text = (repo.root / "reports" / "pr.md").read_text()
    assert f"| roc_auc | {baseline['roc_auc']:.4f} | {current['roc_auc']:.4f} |" in text
    assert "| `train.logistic_regression.C` | 1.0 | 0.01 |" in text
    gate = repo.run(churn, "gate", "--baseline", "HEAD", check=False)
    gates = load_params(repo.root / "params.yaml").gate
    broken = [
        metric
        for metric, rule in gates.items()
        if not rule.within_limit(current[metric])
        or rule.worsening(current[metric], baseline[metric]) > rule.max_regression
    ]
    assert gate.returncode == (1 if broken else 0), gate.stdout
    assert all(metric in gate.stdout for metric in broken)
    strict = (
        (repo.root / "params.yaml")
        .read_text()
        .replace("roc_auc: {limit: 0.83,", f"roc_auc: {{limit: {current['roc_auc'] + 0.01:.4f},")
    )
    (repo.root / "strict.yaml").write_text(strict)
    failing = repo.run(churn, "gate", "--baseline", "HEAD", "--params", "strict.yaml", check=False)
    assert failing.returncode == 1
    assert "roc_auc" in failing.stdout
    assert "below the floor" in failing.stdout
    first_pr = repo.run(churn, "gate", "--baseline", "no-such-branch", check=False)
    assert "no baseline yet" in first_pr.stdout
