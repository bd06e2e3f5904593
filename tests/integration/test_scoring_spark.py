"""`churn score --engine spark` in Spark local mode: exactly the single process's answers.

One SparkSession (local[2]) for the module; the input is the held-out split
with a few rows broken from the contract, so the rejects are compared too.
Needs Java: ``make install`` installs it (scripts/ensure-java.sh).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from churn.core.contract import Contract
from churn.core.domain import Domain
from churn.scoring import chunk as steps
from churn.scoring import local, spark
from churn.serving.loader import LoadedModel
from tests.support.models import TrainedModel

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def session() -> Iterator[SparkSession]:
    running = spark.session("local[2]", app_name="churn-score-tests")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def records(
    trained_model: TrainedModel, contract: Contract, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    frame = trained_model.test.reset_index(drop=True).astype(object)
    numeric, categorical = contract.numeric[0], contract.categorical[0]
    frame.loc[5, numeric.name] = numeric.min_value - 1
    frame.loc[9, categorical.name] = "".join(categorical.levels) + "?"
    path = tmp_path_factory.mktemp("spark-input") / "records.csv"
    frame.to_csv(path, index=False)
    return path


def test_spark_gives_the_single_process_answers(
    session: SparkSession,
    records: Path,
    domain: Domain,
    model: LoadedModel,
    tmp_path: Path,
) -> None:
    contract = domain.contract
    single = local.run(
        str(records),
        local.Outputs.beside(str(tmp_path / "local.parquet")),
        domain=domain,
        model=model,
    )
    cluster = spark.score(
        str(records), str(tmp_path / "spark.parquet"), domain=domain, model=model, spark=session
    )
    key = contract.id.name
    expected = pd.read_parquet(tmp_path / "local.parquet").set_index(key).sort_index()
    actual = pd.read_parquet(tmp_path / "spark.parquet").set_index(key).sort_index()
    assert len(actual) == len(expected) == single.scored
    assert list(actual.index) == list(expected.index)
    assert (actual[steps.PROBABILITY] == expected[steps.PROBABILITY]).all()  # exactly
    assert (actual[steps.DECISION] == expected[steps.DECISION]).all()
    assert set(actual[steps.MODEL_SHA256]) == {model.sha256}

    expected_rejects = pd.read_parquet(tmp_path / "local.rejects.parquet")
    actual_rejects = pd.read_parquet(tmp_path / "spark.rejects.parquet")
    assert len(expected_rejects) == 2
    assert dict(zip(actual_rejects[key], actual_rejects[steps.REASON], strict=True)) == dict(
        zip(expected_rejects[key], expected_rejects[steps.REASON], strict=True)
    )

    local_summary = json.loads((tmp_path / "local.summary.json").read_text())
    spark_summary = json.loads((tmp_path / "spark.summary.json").read_text())
    assert cluster.rejected == single.rejected == 2
    for part in ("rows", "features", "drift"):
        assert spark_summary[part] == local_summary[part], part
    assert spark_summary["scores"]["counts"] == local_summary["scores"]["counts"]
    assert spark_summary["scores"]["mean"] == pytest.approx(local_summary["scores"]["mean"])


def test_spark_refuses_an_existing_output(
    session: SparkSession, records: Path, domain: Domain, model: LoadedModel, tmp_path: Path
) -> None:
    from churn.core.errors import DataError

    out = tmp_path / "spark.parquet"
    out.mkdir()
    (out / "part-0.parquet").write_bytes(b"last month")
    with pytest.raises(DataError, match="already exists"):
        spark.score(str(records), str(out), domain=domain, model=model, spark=session)
    assert [p.name for p in out.iterdir()] == ["part-0.parquet"]
