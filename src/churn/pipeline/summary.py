"""A human summary of the last pipeline run, for the end of `make demo`."""

from __future__ import annotations

from pathlib import Path

from churn.core.artifacts import CARD_FILE, RUN_RECORD, ModelCard, RunRecord
from churn.core.jsonio import read_json_object

LABELS = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC (average precision)",
    "f1": "F1",
    "precision": "Precision",
    "recall": "Recall",
    "accuracy": "Accuracy",
    "brier": "Brier score (lower is better)",
    "log_loss": "Log loss (lower is better)",
}
CV_LABEL = "{folds}-fold CV ROC AUC (train split)"


def render(
    metrics_path: Path, model_dir: Path, plots_dir: Path, run_record: Path = RUN_RECORD
) -> str:
    metrics = read_json_object(metrics_path, hint="run `dvc repro` first")
    card = ModelCard.read(model_dir / CARD_FILE)
    cv_label = CV_LABEL.format(folds=card.params["cv_folds"])
    width = max(len(label) for label in (*LABELS.values(), cv_label))
    lines = [f"Held-out metrics ({metrics_path}):", ""]
    lines += [f"  {LABELS.get(k, k):<{width}}  {v:.4f}" for k, v in metrics.items()]
    lines += [
        f"  {cv_label:<{width}}  "
        f"{card.metrics['cv_roc_auc']:.4f} ± {card.metrics['cv_roc_auc_std']:.4f}",
        "",
        f"Model:   {model_dir}/ ({card.estimator}, sha256 {card.sha256[:12]}…); "
        f"serve it with: churn serve --model-dir {model_dir}",
        f"Plots:   {plots_dir}/*.csv (dvc plots show), {plots_dir}/images/*.png",
    ]
    if (run := RunRecord.read_for(run_record, card)) is not None:
        lines.append(
            f"MLflow:  {run.tracking_uri}, run {run.run_id}, "
            f"model {run.registered_model} v{run.version}"
        )
        if run.tracking_uri.startswith("sqlite:"):
            lines.append(f"         browse with: mlflow ui --backend-store-uri {run.tracking_uri}")
    return "\n".join(lines)
