import numpy as np
import pandas as pd
import pytest

from churn.core.contract import Contract
from churn.core.params import Params
from churn.pipeline.evaluate import class_names, compute_metrics, permutation_importance, plot_data


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


def test_every_gated_metric_is_one_evaluate_computes(params: Params) -> None:
    computed = compute_metrics(np.array([0, 1]), np.array([0.2, 0.8]), threshold=0.5)
    assert set(params.gate) <= set(computed)


class _UsesOnlySignal:
    """A stand-in model whose score depends on one column, to check the importance."""

    def predict_proba(self, x: pd.DataFrame) -> np.ndarray:
        score = x["signal"].to_numpy(dtype=float) / 100
        return np.column_stack([1 - score, score])


def test_permutation_importance_finds_the_only_informative_feature() -> None:
    rng = np.random.default_rng(0)
    signal = rng.integers(0, 72, 400)
    x = pd.DataFrame({"signal": signal, "noise": rng.normal(size=400)})
    y = (signal + rng.normal(0, 10, 400) > 36).astype(int)
    table = permutation_importance(_UsesOnlySignal(), x, y, seed=0)
    importance = dict(zip(table["feature"], table["importance"], strict=True))
    assert importance["signal"] > 0.3
    assert importance["noise"] == 0.0
    assert list(table["feature"]) == ["signal", "noise"]


def test_class_names_are_the_labels_own_levels(contract: Contract) -> None:
    names = class_names(contract)
    assert names[1] == contract.label.positive
    assert {names[0], names[1]} == set(contract.label.levels)


def test_plot_data_shapes(params: Params, contract: Contract) -> None:
    y = np.array([0, 1] * 50)
    score = np.linspace(0.01, 0.99, 100)
    plots = plot_data(y, score, 0.5, params.evaluate, class_names(contract))
    assert list(plots["roc"].columns) == ["fpr", "tpr"]
    assert plots["roc"]["tpr"].iloc[-1] == 1.0
    assert len(plots["confusion"]) == 100
    assert set(plots["confusion"]["actual"]) == set(contract.label.levels)
    positive = plots["confusion"]["actual"].eq(contract.label.positive)
    assert positive.to_numpy().tolist() == (y == 1).tolist()
    assert len(plots["calibration"]) <= params.evaluate.calibration_bins
