import numpy as np
import pandas as pd
import pytest

from churn.evaluate import compute_metrics, permutation_importance, plot_data
from churn.params import Params


def test_metrics_of_a_perfect_ranking() -> None:
    y = np.array([0, 0, 1, 1])
    metrics = compute_metrics(y, np.array([0.1, 0.2, 0.8, 0.9]), threshold=0.5)
    assert metrics["roc_auc"] == 1.0
    assert metrics["f1"] == metrics["accuracy"] == 1.0
    assert metrics["brier"] == pytest.approx(0.025)
    assert set(metrics) == {
        "roc_auc", "pr_auc", "f1", "precision", "recall", "accuracy", "brier", "log_loss",
    }  # fmt: skip


def test_threshold_moves_the_decision_metrics_only() -> None:
    y = np.array([0, 1, 0, 1])
    score = np.array([0.3, 0.4, 0.6, 0.9])
    low, high = compute_metrics(y, score, 0.35), compute_metrics(y, score, 0.7)
    assert low["roc_auc"] == high["roc_auc"]
    assert low["recall"] == 1.0
    assert high["recall"] == 0.5


class _UsesOnlyTenure:
    """A stand-in model whose score depends on one column, to check the importance."""

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        score = x["tenure"].to_numpy(dtype=float) / 100
        return np.column_stack([1 - score, score])


def test_permutation_importance_finds_the_only_informative_feature() -> None:
    rng = np.random.default_rng(0)
    tenure = rng.integers(0, 72, 400)
    x = pd.DataFrame({"tenure": tenure, "noise": rng.normal(size=400)})
    y = (tenure + rng.normal(0, 10, 400) > 36).astype(int)
    table = permutation_importance(_UsesOnlyTenure(), x, y, seed=0)
    importance = dict(zip(table["feature"], table["importance"], strict=True))
    assert importance["tenure"] > 0.3
    assert importance["noise"] == 0.0


def test_plot_data_shapes(params: Params) -> None:
    y = np.array([0, 1] * 50)
    score = np.linspace(0.01, 0.99, 100)
    plots = plot_data(y, score, 0.5, params.evaluate)
    assert list(plots["roc"].columns) == ["fpr", "tpr"]
    assert plots["roc"]["tpr"].iloc[-1] == 1.0
    assert len(plots["confusion"]) == 100
    assert set(plots["confusion"]["actual"]) == {"stays", "churns"}
    assert len(plots["calibration"]) <= params.evaluate.calibration_bins
