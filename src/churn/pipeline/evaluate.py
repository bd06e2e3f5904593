"""Stage `evaluate`: held-out metrics and plots, as data for DVC and as PNGs.

Plot data is written as small CSV files that `dvc plots show`/`dvc plots diff`
render with the templates named in `dvc.yaml`; the same data is drawn with
matplotlib into PNG files, because a pull-request comment needs images and
DVC's HTML needs a JavaScript CDN that an offline runner cannot reach.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from churn.core.contract import Contract
from churn.core.data import features, label, load
from churn.core.domain import Domain
from churn.core.params import EvaluateParams
from churn.pipeline.model import load_model, onnx_difference

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger(__name__)
# Permutation importance re-scores the test set once per feature and repeat;
# past this many rows a seeded sample gives the same ranking for far less time.
IMPORTANCE_ROWS = 10_000
IMPORTANCE_REPEATS = 5
PLOT_FILES = {
    "roc": "roc.csv",
    "precision_recall": "precision_recall.csv",
    "confusion": "confusion.csv",
    "calibration": "calibration.csv",
    "feature_importance": "feature_importance.csv",
}
IMAGE_DIR = "images"


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, float]
    plots: dict[str, pd.DataFrame]


def compute_metrics(y_true: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    """Ranking, threshold and probability-quality metrics, rounded for stable diffs."""
    from sklearn import metrics as m

    decision = (score >= threshold).astype(int)
    values = {
        "roc_auc": m.roc_auc_score(y_true, score),
        "pr_auc": m.average_precision_score(y_true, score),
        "f1": m.f1_score(y_true, decision, zero_division=0),
        "precision": m.precision_score(y_true, decision, zero_division=0),
        "recall": m.recall_score(y_true, decision, zero_division=0),
        "accuracy": m.accuracy_score(y_true, decision),
        "brier": m.brier_score_loss(y_true, score),
        "log_loss": m.log_loss(y_true, score, labels=[0, 1]),
    }
    return {name: round(float(value), 6) for name, value in values.items()}


def permutation_importance(
    pipeline: Pipeline, x: pd.DataFrame, y: np.ndarray, seed: int
) -> pd.DataFrame:
    """Mean drop in ROC AUC when one input column is shuffled, per contract feature.

    The same estimate as `sklearn.inspection.permutation_importance`, but all
    shuffled copies are scored in *one* `predict_proba` call: the pipeline's
    per-call input checking (~50 ms) would otherwise dominate, paid once per
    feature and repeat.
    """
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    if len(x) > IMPORTANCE_ROWS:
        rows = np.sort(rng.choice(len(x), IMPORTANCE_ROWS, replace=False))
        x, y = x.iloc[rows], y[rows]
    x = x.reset_index(drop=True)
    copies = []
    for column in x.columns:
        for _ in range(IMPORTANCE_REPEATS):
            shuffled = x.copy()
            shuffled[column] = x[column].to_numpy()[rng.permutation(len(x))]
            copies.append(shuffled)
    scores = pipeline.predict_proba(pd.concat([x, *copies], ignore_index=True))[:, 1]
    blocks = scores.reshape(1 + len(copies), len(x))
    baseline = roc_auc_score(y, blocks[0])
    drops = np.array([baseline - roc_auc_score(y, block) for block in blocks[1:]])
    importance = drops.reshape(len(x.columns), IMPORTANCE_REPEATS).mean(axis=1)
    table = pd.DataFrame({"feature": list(x.columns), "importance": np.round(importance, 6)})
    return table.sort_values("importance", ascending=False, ignore_index=True)


def class_names(contract: Contract) -> dict[int, str]:
    """0/1 as the label's own levels (negative, positive), for tables and plots."""
    negative = next(level for level in contract.label.levels if level != contract.label.positive)
    return {0: negative, 1: contract.label.positive}


def plot_data(
    y_true: np.ndarray,
    score: np.ndarray,
    threshold: float,
    params: EvaluateParams,
    names: dict[int, str],
) -> dict[str, pd.DataFrame]:
    """The curves behind each plot, as tables DVC can render."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import precision_recall_curve, roc_curve

    fpr, tpr, _ = roc_curve(y_true, score)
    precision, recall, _ = precision_recall_curve(y_true, score)
    observed, predicted = calibration_curve(y_true, score, n_bins=params.calibration_bins)
    decision = (score >= threshold).astype(int)
    return {
        "roc": pd.DataFrame({"fpr": fpr, "tpr": tpr}).round(6),
        "precision_recall": pd.DataFrame({"recall": recall, "precision": precision}).round(6),
        "confusion": pd.DataFrame(
            {"actual": [names[v] for v in y_true], "predicted": [names[v] for v in decision]}
        ),
        "calibration": pd.DataFrame(
            {"mean_predicted": predicted, "fraction_positive": observed}
        ).round(6),
    }


def run(
    pipeline: Pipeline,
    frame: pd.DataFrame,
    *,
    threshold: float,
    params: EvaluateParams,
    seed: int,
    contract: Contract,
) -> Evaluation:
    x, y = features(frame, contract), label(frame, contract)
    score = pipeline.predict_proba(x)[:, 1]
    plots = plot_data(y, score, threshold, params, class_names(contract))
    plots["feature_importance"] = permutation_importance(pipeline, x, y, seed)
    return Evaluation(metrics=compute_metrics(y, score, threshold), plots=plots)


def render_images(evaluation: Evaluation, out_dir: Path, contract: Contract) -> list[Path]:
    """Draw each plot as a PNG (matplotlib's Agg backend, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    out_dir.mkdir(parents=True, exist_ok=True)
    plots, metrics = evaluation.plots, evaluation.metrics
    written: list[Path] = []

    def save(fig: Figure, name: str) -> None:
        path = out_dir / f"{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100, metadata={"Software": None})
        plt.close(fig)
        written.append(path)

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot(plots["roc"]["fpr"], plots["roc"]["tpr"], label=f"AUC {metrics['roc_auc']:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC curve")
    ax.legend(loc="lower right")
    save(fig, "roc")

    fig, ax = plt.subplots(figsize=(5, 5))
    pr = plots["precision_recall"]
    ax.plot(pr["recall"], pr["precision"], label=f"AP {metrics['pr_auc']:.3f}")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall curve", ylim=(0, 1.02))
    ax.legend(loc="upper right")
    save(fig, "precision_recall")

    fig, ax = plt.subplots(figsize=(4.5, 4))
    labels = list(class_names(contract).values())
    counts = pd.crosstab(plots["confusion"]["actual"], plots["confusion"]["predicted"])
    counts = counts.reindex(index=labels, columns=labels, fill_value=0)
    ax.imshow(counts.to_numpy(), cmap="Blues")
    for (i, j), value in np.ndenumerate(counts.to_numpy()):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=12)
    ax.set_xticks([0, 1], labels)
    ax.set_yticks([0, 1], labels)
    target = contract.label.name
    ax.set(xlabel=f"Predicted {target}", ylabel=f"Actual {target}", title="Confusion matrix")
    save(fig, "confusion")

    fig, ax = plt.subplots(figsize=(5, 5))
    cal = plots["calibration"]
    ax.plot(cal["mean_predicted"], cal["fraction_positive"], marker="o", label="model")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    ax.set(
        xlabel="Mean predicted probability",
        ylabel=f"Fraction with {contract.label.name} = {contract.label.positive}",
        title="Calibration",
    )
    ax.legend(loc="upper left")
    save(fig, "calibration")

    fig, ax = plt.subplots(figsize=(6, 5))
    imp = plots["feature_importance"].iloc[::-1]
    ax.barh(imp["feature"], imp["importance"])
    ax.set(xlabel="Drop in ROC AUC when shuffled", title="Permutation importance")
    save(fig, "feature_importance")
    return written


def main(
    test_path: Path,
    model_dir: Path,
    *,
    metrics_path: Path,
    plots_dir: Path,
    params: EvaluateParams,
    seed: int,
    domain: Domain,
    run_record: Path | None = None,
) -> dict[str, float]:
    """Score ``test_path``; add the metrics and plots to the MLflow run ``run_record``
    names when it is this model's (a record of another model is left alone)."""
    from churn.core.artifacts import ONNX_FILE, RunRecord
    from churn.registry import tracking

    pipeline, card = load_model(model_dir)
    contract = domain.contract
    frame = load([test_path], domain)
    # The service answers with the ONNX export: check it on every held-out row.
    onnx = (model_dir / ONNX_FILE).read_bytes()
    difference = onnx_difference(pipeline, onnx, features(frame, contract), contract)
    log.info("ONNX export matches the pipeline on the test split (max |diff| %.1e)", difference)
    evaluation = run(
        pipeline, frame, threshold=card.threshold, params=params, seed=seed, contract=contract
    )
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(evaluation.metrics, indent=2) + "\n")
    plots_dir.mkdir(parents=True, exist_ok=True)
    for name, table in evaluation.plots.items():
        table.to_csv(plots_dir / PLOT_FILES[name], index=False)
    render_images(evaluation, plots_dir / IMAGE_DIR, contract)
    record = None if run_record is None else RunRecord.read_for(run_record, card)
    if record is not None:
        tracking.log_evaluation(record, evaluation.metrics, plots_dir / IMAGE_DIR)
    elif run_record is not None:
        log.info("%s: no run record of this model, metrics not logged to MLflow", run_record)
    log.info(
        "ROC AUC %.4f on %d held-out rows",
        evaluation.metrics["roc_auc"],
        len(evaluation.plots["confusion"]),
    )
    return evaluation.metrics
