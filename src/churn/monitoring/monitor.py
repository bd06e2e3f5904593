"""`churn monitor`: should the model be retrained? The retraining trigger.

Two checks on what the service logged (`churn.monitoring.predlog`), with the rules of
``params.yaml``:

- **data drift** (`churn.monitoring.drift`): the features of the predictions made in
  the newest ``monitoring.window_days`` of the log against the training
  split, per feature, with the ``drift`` section's thresholds;
- **performance decay** (`churn.monitoring.performance`): the served model's ROC AUC,
  precision and recall on the outcomes reported on ``POST /feedback``
  against its test metrics, with the ``monitoring`` section's allowed drops.

Retraining is due when either fires. The scheduled retrain workflow and
`make retrain LOG_DIR=...` run this first and retrain only when it exits 1.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from churn.core.contract import api_name
from churn.core.errors import DataError, first_line
from churn.monitoring.drift import Counts, DriftResult, compare_counts
from churn.monitoring.performance import PerformanceReport, read_baseline
from churn.monitoring.performance import run as performance_run
from churn.monitoring.predlog import STREAMS, ReadStats, read_feedback, read_predictions

if TYPE_CHECKING:
    from churn.core.artifacts import ModelCard
    from churn.core.domain import Domain
    from churn.core.params import Params
    from churn.monitoring.drift import ReferenceProfile
    from churn.monitoring.predlog import FeedbackRecord, PredictionRecord


@dataclass(frozen=True)
class MonitorResult:
    drift: DriftResult | None  # None: no predictions logged in the window
    performance: PerformanceReport
    window_predictions: int

    @property
    def reasons(self) -> list[str]:
        reasons = []
        if self.drift is not None and self.drift.drift:
            names = ", ".join(self.drift.drifted_features)
            reasons.append(f"data drift in {names}")
        if self.performance.verdict == "decayed":
            failed = ", ".join(c.metric for c in self.performance.checks if c.passed is False)
            reasons.append(f"performance decayed ({failed})")
        return reasons

    @property
    def retrain(self) -> bool:
        return bool(self.reasons)

    def render(self) -> str:
        parts = []
        if self.drift is None:
            parts.append("DRIFT: no predictions logged in the window: nothing to compare")
        else:
            parts.append(f"DRIFT ({self.window_predictions} logged predictions in the window)")
            parts.append(self.drift.render())
        parts.append("PERFORMANCE")
        parts.append(self.performance.render())
        if self.retrain:
            parts.append("RETRAIN: yes, " + "; ".join(self.reasons))
        else:
            parts.append("RETRAIN: no (no drift, no decay)")
        return "\n\n".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "retrain": self.retrain,
            "reasons": self.reasons,
            "window_predictions": self.window_predictions,
            "drift": None if self.drift is None else self.drift.to_dict(),
            "performance": json.loads(self.performance.to_json()),
        }


def recent(predictions: list[PredictionRecord], days: int) -> list[PredictionRecord]:
    """The predictions of the newest `days` of the log (by prediction time)."""
    if not predictions:
        return []
    newest = max(p.time for p in predictions)
    return [p for p in predictions if p.time > newest - timedelta(days=days)]


def live_counts(
    profile: ReferenceProfile, predictions: list[PredictionRecord]
) -> dict[str, Counts]:
    """Counts per bin of each profiled feature over the logged predictions' inputs."""
    counts: dict[str, Counts] = {}
    for feature in profile.features:
        name = api_name(feature.name)
        dtype = np.float64 if feature.kind == "numeric" else object
        try:
            values = np.array([p.features[name] for p in predictions], dtype=dtype)
        except KeyError:
            raise DataError(f"the prediction log has no feature {name!r}") from None
        counts[feature.name] = feature.bin_counts(values)
    return counts


def run(
    reference: ReferenceProfile,
    predictions: list[PredictionRecord],
    feedback: list[FeedbackRecord],
    card: ModelCard,
    baseline: dict[str, float],
    *,
    params: Params,
    cut_off_files: list[str] | None = None,
) -> MonitorResult:
    """Both checks on objects: no files."""
    window = recent(predictions, params.monitoring.window_days)
    drift = None
    if window:
        drift = compare_counts(
            reference,
            live_counts(reference, window),
            params.drift,
            sources=("training data", "prediction log"),
        )
    performance = performance_run(
        predictions, feedback, card, baseline, params.monitoring, cut_off_files=cut_off_files or []
    )
    return MonitorResult(drift, performance, len(window))


@contextmanager
def local_log(location: str) -> Iterator[Path]:
    """The prediction log as a local directory: `location` itself, or a download of
    ``s3://bucket/prefix`` (the service's S3 spool layout: ``<prefix>/<stream>/<file>``)
    into a temporary directory removed afterwards. Credentials and endpoint
    (``AWS_ENDPOINT_URL``) come from boto3's usual environment variables."""
    if not location.startswith("s3://"):
        yield Path(location)
        return
    from churn.monitoring.predlog import s3_client, split_s3_uri

    client = s3_client()
    bucket, prefix = split_s3_uri(location)
    with tempfile.TemporaryDirectory(prefix="churn-log-") as directory:
        found = 0
        try:
            for stream in STREAMS:
                stream_prefix = "/".join(part for part in (prefix, stream, "") if part)
                pages = client.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=stream_prefix
                )
                for page in pages:
                    for item in page.get("Contents", []):
                        name = item["Key"].rsplit("/", 1)[-1]
                        client.download_file(bucket, item["Key"], str(Path(directory, name)))
                        found += 1
        except Exception as exc:  # botocore's errors: missing bucket, no access, unreachable
            reason = first_line(exc)
            raise DataError(f"{location}: cannot read the prediction log ({reason})") from None
        if not found:
            raise DataError(f"{location}: no prediction log files under this prefix")
        yield Path(directory)


def main(
    log_dir: Path,
    reference_path: Path,
    card_path: Path,
    metrics_path: Path,
    params: Params,
    *,
    domain: Domain,
    json_out: Path | None = None,
) -> MonitorResult:
    """Read the log, the training split (in ``domain``'s format), the card and the
    test metrics; `run`; write JSON."""
    from churn.core.artifacts import ModelCard
    from churn.monitoring.drift import build_profile, load_checked

    training = load_checked(reference_path, domain=domain)
    reference = build_profile(training, params.drift.numeric_bins, contract=domain.contract)
    stats = ReadStats()
    predictions = read_predictions(log_dir, stats)
    feedback = read_feedback(log_dir, stats)
    result = run(
        reference,
        predictions,
        feedback,
        ModelCard.read(card_path),
        read_baseline(metrics_path),
        params=params,
        cut_off_files=stats.cut_off,
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    return result
