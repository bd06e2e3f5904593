"""`churn score` as a user runs it: the service's answers, bad input, S3.

The model is the one trained on the real split (`trained_model`); the
answers are compared with the real app's ``/predict/batch`` in this process.
Every record comes from the contract or the real data: nothing here knows
the example's domain.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.core.contract import Contract
from churn.scoring import chunk as steps
from churn.serving.app import create_app
from churn.serving.loader import LoadedModel
from churn.serving.records import to_api_records
from churn.serving.settings import ServingSettings
from tests.support.asgi import AppClient
from tests.support.cli import churn
from tests.support.models import TrainedModel
from tests.support.servers import S3_CREDENTIALS, S3Server, free_port

pytestmark = pytest.mark.integration
EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def score_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> tuple[int, str, str]:
    done = churn("score", *args, env=env, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="module")
def test_csv(trained_model: TrainedModel, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The held-out split as a CSV export (the label column included: it is ignored)."""
    path = tmp_path_factory.mktemp("input") / "records.csv"
    trained_model.test.to_csv(path, index=False)
    return path


def service_scores(model: LoadedModel, contract: Contract, frame: pd.DataFrame) -> np.ndarray:
    """The app's ``/predict/batch`` answers for every row of ``frame``, in order."""
    records = to_api_records(frame, contract)
    limit = ServingSettings().max_batch_size
    scores: list[float] = []
    app = create_app(ServingSettings(), model, contract=contract)
    with AppClient(app) as client:
        for start in range(0, len(records), limit):
            response = client.post(
                "/predict/batch", json={"records": records[start : start + limit]}
            )
            assert response.status_code == 200, response.text
            scores += [p["probability"] for p in response.json()["predictions"]]
    return np.asarray(scores)


def test_scores_are_the_service_answers_on_the_test_split(
    trained_model: TrainedModel,
    model: LoadedModel,
    contract: Contract,
    test_csv: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "scores.parquet"
    code, stdout, stderr = score_cli(
        "--input", str(test_csv), "--output", str(out), "--model-dir", str(trained_model.directory)
    )
    assert code == EXIT_OK, stderr
    scores = pd.read_parquet(out)
    test = trained_model.test
    assert list(scores[contract.id.name]) == list(test[contract.id.name])
    expected = service_scores(model, contract, test)
    assert np.max(np.abs(scores[steps.PROBABILITY].to_numpy() - expected)) < 1e-6
    threshold = model.card.threshold
    assert (scores[steps.DECISION].to_numpy() == (expected >= threshold)).all()
    assert set(scores[steps.MODEL_SHA256]) == {model.sha256}
    assert f"scored {len(test):,}" in stdout
    summary = json.loads((tmp_path / "scores.summary.json").read_text())
    assert summary["rows"] == {"read": len(test), "scored": len(test), "rejected": 0}
    assert pd.read_parquet(tmp_path / "scores.rejects.parquet").empty


def test_rejected_rows_exit_1_and_are_listed(
    trained_model: TrainedModel, contract: Contract, tmp_path: Path
) -> None:
    frame = trained_model.test.head(50).reset_index(drop=True)
    numeric = contract.numeric[0]
    frame[numeric.name] = frame[numeric.name].astype(object)
    frame.loc[3, numeric.name] = numeric.max_value + abs(numeric.max_value) + 1
    frame.loc[7, contract.id.name] = ""
    source = tmp_path / "records.csv"
    frame.to_csv(source, index=False)
    out = tmp_path / "scores.parquet"
    code, stdout, stderr = score_cli(
        "--input", str(source), "--output", str(out), "--model-dir", str(trained_model.directory)
    )
    assert code == EXIT_REJECTED, stderr
    rejects = pd.read_parquet(tmp_path / "scores.rejects.parquet")
    assert list(rejects[steps.ROW]) == [3, 7]
    assert numeric.name in rejects[steps.REASON].iloc[0]
    assert contract.id.name in rejects[steps.REASON].iloc[1]
    assert len(pd.read_parquet(out)) == len(frame) - 2
    assert "rejected 2" in stdout


def bad_inputs(contract: Contract, good: Path, directory: Path) -> dict[str, tuple[Path, str]]:
    """Each bad input: a file and a word its one-line error must contain."""
    empty = directory / "empty.csv"
    empty.write_text("")
    header_only = directory / "header.csv"
    header_only.write_text(",".join(contract.all_columns) + "\n")
    dropped = contract.feature_names[-1]
    without = directory / "without.csv"
    pd.read_csv(good, dtype=str).drop(columns=[dropped]).to_csv(without, index=False)
    garbage = directory / "garbage.parquet"
    garbage.write_bytes(b"not parquet at all" * 10)
    unreadable = directory / "unreadable.csv"
    unreadable.write_text(good.read_text())
    unreadable.chmod(0)
    return {
        "missing file": (directory / "nothing-here.csv", "no such file"),
        "a directory": (directory, "directory"),
        "empty file": (empty, "empty"),
        "header only": (header_only, "no rows"),
        "missing column": (without, dropped),
        "not parquet": (garbage, "Parquet"),
        "unreadable": (unreadable, "not readable"),
    }


def test_bad_input_is_one_line_exit_2_and_leaves_nothing(
    trained_model: TrainedModel, contract: Contract, test_csv: Path, tmp_path: Path
) -> None:
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    cases = bad_inputs(contract, test_csv, inputs)
    import os

    for name, (path, word) in cases.items():
        if name == "unreadable" and os.geteuid() == 0:
            continue  # root reads any file
        out_dir = tmp_path / "out" / name.replace(" ", "-")
        code, _, stderr = score_cli(
            "--input",
            str(path),
            "--output",
            str(out_dir / "scores.parquet"),
            "--model-dir",
            str(trained_model.directory),
        )
        assert code == EXIT_USAGE, (name, stderr)
        lines = stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1 and word in errors[0], (name, stderr)
        assert "Traceback" not in stderr
        assert not out_dir.exists() or not any(out_dir.iterdir()), name


def test_an_existing_output_is_kept_unless_overwrite(
    trained_model: TrainedModel, test_csv: Path, tmp_path: Path
) -> None:
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"last month's scores")
    args = (
        "--input",
        str(test_csv),
        "--output",
        str(out),
        "--model-dir",
        str(trained_model.directory),
    )
    code, _, stderr = score_cli(*args)
    assert code == EXIT_USAGE and "already exists" in stderr
    assert out.read_bytes() == b"last month's scores"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.parquet"]
    code, _, stderr = score_cli(*args, "--overwrite")
    assert code == EXIT_OK, stderr
    assert len(pd.read_parquet(out)) == len(pd.read_csv(test_csv))


def test_scores_from_and_to_s3(
    s3_server: S3Server,
    trained_model: TrainedModel,
    test_csv: Path,
    contract: Contract,
    tmp_path: Path,
) -> None:
    bucket = s3_server.create_bucket("scoring")
    client = s3_server.client()
    client.upload_file(str(test_csv), bucket, "in/records.csv")
    env = {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": s3_server.endpoint_url}
    code, _, stderr = score_cli(
        "--input",
        f"s3://{bucket}/in/records.csv",
        "--output",
        f"s3://{bucket}/out/scores.parquet",
        "--model-dir",
        str(trained_model.directory),
        env=env,
    )
    assert code == EXIT_OK, stderr
    # (pyarrow leaves a directory marker, "out/", where it deleted the temporary file)
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    keys = sorted(o["Key"] for o in listed if not o["Key"].endswith("/"))
    assert keys == [
        "in/records.csv",
        "out/scores.parquet",
        "out/scores.rejects.parquet",
        "out/scores.summary.json",
    ]
    local = tmp_path / "scores.parquet"
    client.download_file(bucket, "out/scores.parquet", str(local))
    scores = pd.read_parquet(local)
    assert len(scores) == len(pd.read_csv(test_csv))
    assert scores[contract.id.name].is_unique


def test_an_unreachable_s3_endpoint_fails_fast(trained_model: TrainedModel, tmp_path: Path) -> None:
    env = {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}
    start = time.monotonic()
    code, _, stderr = score_cli(
        "--input",
        "s3://nowhere/records.csv",
        "--output",
        str(tmp_path / "scores.parquet"),
        "--model-dir",
        str(trained_model.directory),
        env=env,
        timeout=120,
    )
    assert code == EXIT_USAGE, stderr
    assert time.monotonic() - start < 60
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach" in errors[0], stderr
    assert not any(tmp_path.iterdir())
