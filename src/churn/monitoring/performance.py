"""`churn performance`: how the served model does on the outcomes reported since.

Reads the prediction log (`churn.monitoring.predlog`), keeps the predictions of the
model in the given card (by the ONNX file's hash), joins them with the
feedback, and computes ROC AUC, precision and recall per window of
prediction time (``monitoring.window_days``), newest last. The newest
window is compared with the model's test metrics (``metrics.json``): the
model has decayed when a metric fell by more than its allowed drop
(``params.yaml``'s ``monitoring`` section). Fewer than
``monitoring.min_labelled`` joined predictions in that window give no
verdict: too few outcomes to tell decay from noise.

Standard library and pydantic only (no pandas, no scikit-learn), so it also
runs where only the serving runtime is installed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Literal

from churn.core.artifacts import ModelCard
from churn.core.errors import ModelError
from churn.core.jsonio import read_json_object
from churn.core.params import MonitoringParams
from churn.monitoring.predlog import (
    FeedbackRecord,
    JoinResult,
    Labelled,
    PredictionRecord,
    ReadStats,
    join,
    read_feedback,
    read_predictions,
)

METRICS = ("roc_auc", "precision", "recall")
Verdict = Literal["ok", "decayed", "no_verdict"]


# -- metrics -------------------------------------------------------------------------


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve (ties count half); None unless both classes are present.

    The Mann-Whitney form: the chance that a random positive scores above a
    random negative. O(n log n), no libraries.
    """
    positives = sum(labels)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    order = sorted(range(len(scores)), key=scores.__getitem__)
    rank_sum = 0.0
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        average_rank = (start + end) / 2 + 1  # ranks are 1-based; ties share the mean
        rank_sum += average_rank * sum(labels[order[k]] for k in range(start, end + 1))
        start = end + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


@dataclass(frozen=True)
class Figures:
    """Performance over the joined predictions made in [start, end)."""

    start: datetime
    end: datetime
    labelled: int
    positives: int  # outcomes of the positive class (feedback ``outcome`` true)
    flagged: int  # predictions whose decision (returned to the caller) was positive
    roc_auc: float | None
    precision: float | None  # of the flagged, the share with a positive outcome
    recall: float | None  # of the positive outcomes, the share flagged


def figures(labelled: Sequence[Labelled], start: datetime, end: datetime) -> Figures:
    scores = [item.prediction.probability for item in labelled]
    truth = [item.outcome for item in labelled]
    flagged = [item.prediction.decision for item in labelled]
    hits = sum(t and f for t, f in zip(truth, flagged, strict=True))
    return Figures(
        start=start,
        end=end,
        labelled=len(labelled),
        positives=sum(truth),
        flagged=sum(flagged),
        roc_auc=roc_auc(scores, truth),
        precision=hits / sum(flagged) if any(flagged) else None,
        recall=hits / sum(truth) if any(truth) else None,
    )


def windows(labelled: Sequence[Labelled], days: int) -> list[Figures]:
    """Figures per ``days``-long window of prediction time, ending at the newest; oldest first."""
    if not labelled:
        return []
    width = timedelta(days=days)
    times = [item.prediction.time for item in labelled]
    end = max(times) + timedelta(microseconds=1)  # windows are half-open: include the newest
    oldest = min(times)
    out: list[Figures] = []
    while end > oldest:
        start = end - width
        inside = [item for item, t in zip(labelled, times, strict=True) if start <= t < end]
        if inside:
            out.append(figures(inside, start, end))
        end = start
    return out[::-1]


# -- the check -----------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    metric: str
    value: float | None  # in the newest window; None when undefined there
    baseline: float
    floor: float  # baseline - allowed drop
    passed: bool | None  # None: not enough data to say


@dataclass(frozen=True)
class PerformanceReport:
    model_sha256: str
    estimator: str
    threshold: float
    predictions: int  # of this model
    other_models: int  # predictions of other models, ignored
    feedback: int
    matched_by_request_id: int
    matched_by_id: int
    unmatched: int
    ambiguous: int
    superseded: int  # later reports on a labelled prediction (the first one counts)
    corrections: int  # of those, the ones that contradict the first report
    cut_off_files: list[str]
    windows: list[Figures]
    baseline: dict[str, float]
    training_cv_roc_auc: float | None
    min_labelled: int
    checks: list[Check]
    verdict: Verdict

    @property
    def decayed(self) -> bool:
        return self.verdict == "decayed"

    def to_json(self) -> str:
        def default(value: object) -> str:
            assert isinstance(value, datetime)
            return value.isoformat()

        return json.dumps(asdict(self), indent=2, default=default) + "\n"

    def render(self) -> str:
        lines = [
            f"model {self.model_sha256[:12]}… ({self.estimator}, threshold {self.threshold})",
            f"predictions {self.predictions:,} (other models: {self.other_models:,}), "
            f"feedback {self.feedback:,}: joined {self.matched_by_request_id:,} by request_id "
            f"+ {self.matched_by_id:,} by id; unmatched {self.unmatched:,}, "
            f"ambiguous {self.ambiguous:,}, superseded {self.superseded:,} "
            f"(of which corrections {self.corrections:,}: the first outcome counts)",
        ]
        if self.cut_off_files:
            lines.append(f"cut-off last line skipped in: {', '.join(self.cut_off_files)}")
        lines += [
            "",
            "| window (prediction time, UTC) | labelled | positive "
            "| ROC AUC | precision | recall |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for w in self.windows:
            lines.append(
                f"| {w.start:%Y-%m-%d %H:%M} → {w.end:%Y-%m-%d %H:%M} | {w.labelled:,} "
                f"| {w.positives:,} | {_fmt(w.roc_auc)} | {_fmt(w.precision)} | {_fmt(w.recall)} |"
            )
        base = self.baseline
        lines.append(
            f"| baseline (metrics.json, test split) | | | {_fmt(base['roc_auc'])} "
            f"| {_fmt(base['precision'])} | {_fmt(base['recall'])} |"
        )
        floors = {c.metric: c.floor for c in self.checks}
        lines.append(
            f"| floor (baseline - allowed drop) | | | {_fmt(floors['roc_auc'])} "
            f"| {_fmt(floors['precision'])} | {_fmt(floors['recall'])} |"
        )
        if self.training_cv_roc_auc is not None:
            lines.append(f"\ntraining cross-validation ROC AUC: {self.training_cv_roc_auc:.3f}")
        lines.append("")
        if self.verdict == "no_verdict":
            labelled = self.windows[-1].labelled if self.windows else 0
            lines.append(
                f"no verdict: {labelled:,} labelled predictions in the newest window, "
                f"fewer than min_labelled {self.min_labelled:,}"
                if labelled < self.min_labelled
                else "no verdict: the newest window has only one outcome class"
            )
        elif self.decayed:
            failed = [c for c in self.checks if c.passed is False]
            shown = "; ".join(f"{c.metric} {c.value:.3f} < {c.floor:.3f}" for c in failed)
            lines.append(f"DECAYED: {shown}")
        else:
            lines.append("ok: no metric fell by more than its allowed drop")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"


def run(
    predictions: Sequence[PredictionRecord],
    feedback: Sequence[FeedbackRecord],
    card: ModelCard,
    baseline: dict[str, float],
    params: MonitoringParams,
    *,
    cut_off_files: Sequence[str] = (),
) -> PerformanceReport:
    """Join, window and check: objects in, a report out (no files)."""
    own = [p for p in predictions if p.model_sha256 == card.onnx_sha256]
    joined: JoinResult = join(own, feedback)
    series = windows(joined.labelled, params.window_days)
    newest = series[-1] if series else None
    drops = {
        "roc_auc": params.max_roc_auc_drop,
        "precision": params.max_precision_drop,
        "recall": params.max_recall_drop,
    }
    enough = newest is not None and newest.labelled >= params.min_labelled
    checks = []
    for metric in METRICS:
        value = getattr(newest, metric) if newest is not None else None
        floor = baseline[metric] - drops[metric]
        passed = None if value is None or not enough else value >= floor
        checks.append(Check(metric, value, baseline[metric], floor, passed))
    verdict: Verdict
    if any(c.passed is False for c in checks):
        verdict = "decayed"
    elif any(c.passed for c in checks):
        verdict = "ok"
    else:
        verdict = "no_verdict"
    by_request = sum(item.matched_by == "request_id" for item in joined.labelled)
    return PerformanceReport(
        model_sha256=card.onnx_sha256,
        estimator=card.estimator,
        threshold=card.threshold,
        predictions=len(own),
        other_models=len(predictions) - len(own),
        feedback=len(feedback),
        matched_by_request_id=by_request,
        matched_by_id=len(joined.labelled) - by_request,
        unmatched=joined.unmatched,
        ambiguous=joined.ambiguous,
        superseded=joined.superseded,
        corrections=joined.corrections,
        cut_off_files=list(cut_off_files),
        windows=series,
        baseline=baseline,
        training_cv_roc_auc=card.metrics.get("cv_roc_auc"),
        min_labelled=params.min_labelled,
        checks=checks,
        verdict=verdict,
    )


def read_baseline(path: Path) -> dict[str, float]:
    """ROC AUC, precision and recall on the test split, from ``evaluate``'s metrics.json."""
    metrics = read_json_object(path, ModelError)
    if missing := [metric for metric in METRICS if metric not in metrics]:
        raise ModelError(f"{path}: no {', '.join(missing)}")
    return {metric: float(metrics[metric]) for metric in METRICS}


def main(
    log_dir: Path, card_path: Path, metrics_path: Path, params: MonitoringParams
) -> PerformanceReport:
    """Read the log, the card and the baseline metrics; `run`."""
    card = ModelCard.read(card_path)
    baseline = read_baseline(metrics_path)
    stats = ReadStats()
    predictions = read_predictions(log_dir, stats)
    feedback = read_feedback(log_dir, stats)
    return run(predictions, feedback, card, baseline, params, cut_off_files=stats.cut_off)
