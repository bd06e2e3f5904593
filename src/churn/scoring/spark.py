"""Batch scoring as a Spark job: the same chunk step on every executor.

The driver loads and checks the model as the service does (hash, pin,
self-check), then ships its ONNX bytes to the executors in the task
closure (a few hundred kB); each Python worker builds one onnxruntime
session per task and scores its Arrow batches with
`churn.scoring.chunk.score_chunk` through ``mapInPandas``, so a Spark run
and a single-process run give the same answers row for row. The domain is
not pickled: each worker loads it by name (``CHURN_DOMAIN``, or the package's
own room), as every other entry point does, so the package must be
installed on the executors (docs/scoring.md shows how on each platform).

Every input column is read as a string, as the single process reads it.
The scored and rejected rows come out of one pass (a ``reason`` column
tells them apart), kept on disk while both are written, so each row is
scored once. Outputs are directories of Parquet part files: locally they
are written under a temporary name and renamed; on S3, Spark's own commit
protocol (a ``_SUCCESS`` marker when complete) applies.

``spark-submit`` runs this file (`main`); ``churn score --engine spark``
calls `score` in-process with its own session.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churn.core.domain import DOMAIN_ENV, load_domain
from churn.core.errors import DataError
from churn.scoring import chunk as steps
from churn.scoring.local import (
    new_summary,
    rejects_schema,
    scores_schema,
    stamp_of,
)
from churn.scoring.storage import PARQUET_SUFFIXES, write_text
from churn.scoring.summary import Summary

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from churn.core.domain import Domain
    from churn.serving.loader import LoadedModel

DEFAULT_MASTER = "local[*]"
COUNTS = "_counts"  # per-partition summary counts, JSON, on the first row of each batch


def session(master: str | None = None, app_name: str = "churn-score") -> SparkSession:
    """A Spark session (``master``, else ``SPARK_MASTER``, else all local cores).

    Arrow batches of `churn.scoring.storage.CHUNK_ROWS` rows: the same
    chunk size, so the same memory bound per Python worker.
    """
    from pyspark.sql import SparkSession

    from churn.scoring.storage import CHUNK_ROWS

    builder = SparkSession.builder.appName(app_name)
    # Under spark-submit the master is spark-submit's (--master); otherwise ours.
    if master or "SPARK_ENV_LOADED" not in os.environ:
        chosen = master or os.environ.get("SPARK_MASTER", DEFAULT_MASTER)
        builder = builder.master(chosen)
        if chosen.startswith("local"):
            # Local workers run this interpreter (this environment, with churn
            # installed), not whichever `python3` comes first on PATH. PySpark
            # reads the variable when it creates the context.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    return (
        builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(CHUNK_ROWS))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )


def _spark_path(uri: str) -> str:
    """Spark reads S3 through Hadoop's s3a connector."""
    return "s3a://" + uri.removeprefix("s3://") if uri.startswith("s3://") else uri


def _scorer(
    onnx: bytes, domain_location: str | None, stamp: steps.Stamp, columns: tuple[str, ...]
) -> Any:
    """The function each executor runs over its partition's Arrow batches."""

    def score_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from churn.serving.onnx_model import OnnxModel

        domain = load_domain(domain_location)
        contract = domain.contract
        model = OnnxModel(onnx, contract)  # once per task, not per batch
        for batch in batches:
            text = batch[list(columns)].reset_index(drop=True)
            result = steps.score_chunk(text, domain, model, stamp)
            # The scored rows keep their features as read: `_feature_bins` counts them.
            valid_text = text.drop(index=result.rejected.index).reset_index(drop=True)
            scored = result.scored.assign(**{steps.REASON: None})
            for name in contract.feature_names:
                scored[name] = valid_text[name].to_numpy(dtype=object)
            rejected = result.rejected.reset_index(drop=True)
            rejected[steps.PROBABILITY] = np.nan
            rejected[steps.DECISION] = False
            rejected[steps.THRESHOLD] = stamp.threshold
            rejected[steps.MODEL_VERSION] = stamp.model_version
            rejected[steps.MODEL_SHA256] = stamp.model_sha256
            rejected[steps.SCORED_AT] = pd.Timestamp(stamp.scored_at)
            yield _plain(pd.concat([scored, rejected], ignore_index=True))

    return score_partition


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns as plain Python strings: Spark's Arrow conversion takes no
    Arrow-backed pandas strings (pandas 3's default ``str`` dtype)."""
    for name in frame.columns:
        if pd.api.types.is_string_dtype(frame[name].dtype) and frame[name].dtype != object:
            frame[name] = frame[name].astype(object)
    return frame


def _combined_schema(domain: Domain) -> Any:
    from pyspark.sql.types import (
        BooleanType,
        DoubleType,
        StringType,
        StructField,
        StructType,
        TimestampType,
    )

    contract = domain.contract
    fields = [
        StructField(contract.id.name, StringType()),
        StructField(steps.PROBABILITY, DoubleType()),
        StructField(steps.DECISION, BooleanType()),
        StructField(steps.THRESHOLD, DoubleType()),
        StructField(steps.MODEL_VERSION, StringType()),
        StructField(steps.MODEL_SHA256, StringType()),
        StructField(steps.SCORED_AT, TimestampType()),
        StructField(steps.REASON, StringType()),
    ]
    fields += [StructField(name, StringType()) for name in contract.feature_names]
    return StructType(fields)


def read_input(spark: SparkSession, input_uri: str, columns: tuple[str, ...]) -> DataFrame:
    """The input as a frame of strings (CSV: header row; Parquet: cast)."""
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F  # noqa: N812 (Spark's convention)

    path = _spark_path(input_uri)
    try:
        if input_uri.endswith(PARQUET_SUFFIXES) or Path(input_uri).is_dir():
            frame = spark.read.parquet(path)
        else:
            # Every column as text, no null markers: the single process reads the same way.
            frame = spark.read.options(
                header=True, inferSchema=False, nullValue="\u0000", emptyValue="", mode="FAILFAST"
            ).csv(path)
    except AnalysisException as exc:
        raise DataError(f"{input_uri}: {str(exc).splitlines()[0]}") from None
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{input_uri}: missing columns {', '.join(missing)}")
    return frame.select([F.col(c).cast("string").alias(c) for c in columns])


def score(
    input_uri: str,
    output: str,
    *,
    domain: Domain,
    model: LoadedModel,
    overwrite: bool = False,
    master: str | None = None,
    spark: SparkSession | None = None,
) -> Summary:
    """Score ``input_uri`` with Spark into the directory ``output`` (and its siblings).

    Checks the input as the single process does (`churn.scoring.storage.open_input`),
    then runs the job. Returns the run's summary, also written next to the output.
    """
    from churn.scoring.local import Outputs
    from churn.scoring.storage import open_input

    contract = domain.contract
    steps.check_output_names(contract)
    columns = steps.input_columns(contract)
    if not Path(input_uri).is_dir():
        source = open_input(input_uri, columns)
        if source.missing:
            raise DataError(
                f"{input_uri}: missing columns {', '.join(source.missing)} "
                f"(scoring needs {contract.id.name} and every feature)"
            )
    outputs = Outputs.beside(output)
    outputs.refuse_existing(overwrite=overwrite)
    spark = spark or session(master)
    stamp = stamp_of(model)
    onnx = model_bytes(model)
    domain_location = os.environ.get(DOMAIN_ENV)
    frame = read_input(spark, input_uri, columns)
    combined = frame.mapInPandas(
        _scorer(onnx, domain_location, stamp, columns), schema=_combined_schema(domain)
    )
    from pyspark import StorageLevel
    from pyspark.sql import functions as F  # noqa: N812

    combined = combined.persist(StorageLevel.DISK_ONLY)
    try:
        scored = combined.where(F.col(steps.REASON).isNull()).select(*scores_schema(contract).names)
        rejected = combined.where(F.col(steps.REASON).isNotNull()).select(
            *rejects_schema(contract, row=False).names
        )
        _write(scored, outputs.scores.uri, overwrite=overwrite)
        _write(rejected, outputs.rejects.uri, overwrite=overwrite)
        features = combined.where(F.col(steps.REASON).isNull()).select(*contract.feature_names)
        summary = _summarise(scored, rejected, features, input_uri, outputs, model)
    finally:
        combined.unpersist()
    write_text(outputs.summary, summary.to_json())
    return summary


def model_bytes(model: LoadedModel) -> bytes:
    """The checked ONNX file's bytes (the loader verified them against the card)."""
    from churn.core.artifacts import ONNX_FILE

    directory = Path(model.source)
    data = (directory / ONNX_FILE).read_bytes() if directory.is_dir() else None
    if data is None:
        raise DataError(f"{model.source}: --engine spark needs a model directory")
    from churn.serving.loader import file_sha256_of

    if file_sha256_of(data) != model.sha256:
        raise DataError(f"{model.source}: the ONNX file changed after it was checked")
    return data


def _write(frame: DataFrame, uri: str, *, overwrite: bool) -> None:
    """Write Parquet part files; locally under a temporary name, then renamed."""
    if uri.startswith("s3://"):
        frame.write.mode("overwrite" if overwrite else "errorifexists").parquet(_spark_path(uri))
        return
    target = Path(uri)
    temporary = target.with_name(f"{target.name}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        frame.write.parquet(str(temporary))
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
        temporary.rename(target)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary)


def _summarise(  # noqa: PLR0917 (the job's frames, then what the summary names)
    scored: DataFrame,
    rejected: DataFrame,
    features: DataFrame,
    input_uri: str,
    outputs: Any,
    model: LoadedModel,
) -> Summary:
    """The same summary as the single process: counts from Spark aggregates."""
    from pyspark.sql import functions as F  # noqa: N812

    summary = new_summary(input_uri, outputs, model)
    probability = F.col(steps.PROBABILITY)
    bins = F.least(F.greatest((probability * 10).cast("long"), F.lit(0)), F.lit(9))
    histogram: dict[int, int] = dict(scored.groupBy(bins.alias("bin")).count().collect())
    totals = scored.agg(
        F.count(F.lit(1)), F.sum(probability), F.sum(F.col(steps.DECISION).cast("long"))
    ).first()
    rejected_rows = rejected.count()
    scored_rows = int(totals[0]) if totals else 0
    summary.read = scored_rows + rejected_rows
    summary.scored = scored_rows
    summary.rejected = rejected_rows
    summary.probability_sum = float(totals[1] or 0.0) if totals else 0.0
    summary.flagged = int(totals[2] or 0) if totals else 0
    summary.scores = np.asarray([histogram.get(i, 0) for i in range(10)], dtype=np.int64)
    if model.drift_profile is not None and scored_rows:
        summary.bins = _feature_bins(features, model, os.environ.get(DOMAIN_ENV))
    return summary


def _feature_bins(
    features: DataFrame, model: LoadedModel, domain_location: str | None
) -> dict[str, np.ndarray]:
    """Bin counts of the scored rows' features, counted per batch on the executors
    with the single process's function (`churn.scoring.summary.feature_counts`)."""
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    assert model.drift_profile is not None
    profile = model.drift_profile

    def count_partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        from churn.core.data import clean
        from churn.scoring.summary import feature_counts

        domain = load_domain(domain_location)
        for text in batches:
            frame = clean(text.reset_index(drop=True), domain)
            for feature in profile.reference.features:
                counts = feature_counts(feature, frame[feature.name])
                yield pd.DataFrame(
                    {
                        "feature": feature.name,
                        "bin": np.arange(len(counts), dtype=np.int64),
                        "count": counts,
                    }
                )

    schema = StructType(
        [
            StructField("feature", StringType()),
            StructField("bin", LongType()),
            StructField("count", LongType()),
        ]
    )
    totals = (
        features.mapInPandas(count_partition, schema=schema).groupBy("feature", "bin").sum("count")
    )
    bins = {f.name: np.zeros(len(f.counts), dtype=np.int64) for f in profile.reference.features}
    for name, position, total in totals.collect():
        bins[name][position] = total
    return bins


def main(argv: list[str] | None = None) -> None:
    """``spark-submit .../churn/scoring/spark.py --input ... --output ...``."""
    from churn.core.errors import ModelError
    from churn.scoring.model import load_model

    parser = argparse.ArgumentParser(description="Batch scoring as a Spark job.")
    parser.add_argument("--input", required=True, help="CSV or Parquet: path, s3://, directory")
    parser.add_argument("--output", required=True, help="Parquet directory: path or s3://")
    parser.add_argument("--model-dir", type=Path, help="default: CHURN_MODEL_DIR or models")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    try:
        domain = load_domain()
        model = load_model(domain.contract, model_dir=args.model_dir)
        summary = score(
            args.input, args.output, domain=domain, model=model, overwrite=args.overwrite
        )
    except (DataError, ModelError) as exc:
        sys.exit(f"error: {exc}")
    print(summary.render())
    sys.exit(1 if summary.rejected else 0)


if __name__ == "__main__":
    main()
