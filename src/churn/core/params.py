"""Experiment parameters: `params.yaml`, loaded into frozen, typed models.

Every model forbids unknown keys, so a typo such as ``test_sise`` stops the
run with the offending key named instead of silently using a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from churn.core.yamlio import load_yaml_model, parse_yaml_model

DEFAULT_PATH = Path("params.yaml")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PrepareParams(_Frozen):
    test_size: float = Field(gt=0, lt=1)
    seed: int


class LogisticRegressionParams(_Frozen):
    C: float = Field(gt=0)
    max_iter: int = Field(gt=0)


class HistGradientBoostingParams(_Frozen):
    learning_rate: float = Field(gt=0, le=1)
    max_iter: int = Field(gt=0)
    max_depth: int | None = Field(default=None, gt=0)
    l2_regularization: float = Field(default=0.0, ge=0)


class TrainParams(_Frozen):
    estimator: Literal["logistic_regression", "hist_gradient_boosting"]
    seed: int
    threshold: float = Field(gt=0, lt=1)
    cv_folds: int = Field(ge=2)
    logistic_regression: LogisticRegressionParams
    hist_gradient_boosting: HistGradientBoostingParams


class EvaluateParams(_Frozen):
    calibration_bins: int = Field(ge=2)


class MetricGate(_Frozen):
    """The quality gate of one metric, written as data."""

    limit: float = Field(description="Worst acceptable value: a floor, or a ceiling.")
    max_regression: float = Field(ge=0, description="Largest allowed worsening vs baseline.")
    higher_is_better: bool = True

    def within_limit(self, value: float) -> bool:
        return value >= self.limit if self.higher_is_better else value <= self.limit

    def worsening(self, value: float, baseline: float) -> float:
        """How much worse ``value`` is than ``baseline`` (negative: better)."""
        return baseline - value if self.higher_is_better else value - baseline


class LoadtestParams(_Frozen):
    """`make loadtest`: the load it applies and the SLO it enforces."""

    users: int = Field(ge=1, le=1000)
    spawn_rate: float = Field(gt=0, le=1000)
    duration_s: int = Field(ge=1, le=3600)
    max_p99_ms: float = Field(gt=0)
    max_error_rate: float = Field(ge=0, le=1)


class DriftParams(_Frozen):
    """`churn drift`: when a feature, and the data as a whole, count as drifted.

    A feature drifts when its population stability index reaches
    ``psi_threshold`` (the size of the change) *and* the chi-square test on the
    same bins rejects "same distribution" at ``alpha`` split over the features
    (the change is not sampling noise). See docs/monitoring.md.
    """

    psi_threshold: float = Field(gt=0)
    alpha: float = Field(gt=0, lt=1)
    numeric_bins: int = Field(ge=2, le=100)
    min_drifted_features: int = Field(ge=1)


class MonitoringParams(_Frozen):
    """`churn performance`: when the served model counts as decayed.

    Outcomes reported on ``POST /feedback`` are joined with the logged
    predictions; per ``window_days`` of prediction time, ROC AUC, precision
    and recall are compared with the model's test metrics (``metrics.json``).
    A window with fewer than ``min_labelled`` outcomes gives no verdict.
    See docs/monitoring.md.
    """

    window_days: int = Field(ge=1, le=366)
    min_labelled: int = Field(ge=1)
    max_roc_auc_drop: float = Field(ge=0, le=1)
    max_precision_drop: float = Field(ge=0, le=1)
    max_recall_drop: float = Field(ge=0, le=1)


class ABTestParams(_Frozen):
    """`churn ab-report`: when an A/B test between champion and challenger is decided.

    The outcome is the share of right decisions per variant; the decision is
    a two-sided two-proportion z-test at ``confidence``, taken only once both
    variants have the labelled predictions that ``power`` needs to detect
    ``min_effect`` (an absolute difference in that share). See churn.monitoring.abtest.
    """

    confidence: float = Field(gt=0.5, lt=1)
    power: float = Field(gt=0.5, lt=1)
    min_effect: float = Field(gt=0, lt=0.5)


class Params(_Frozen):
    prepare: PrepareParams
    train: TrainParams
    evaluate: EvaluateParams
    gate: dict[str, MetricGate]
    loadtest: LoadtestParams
    drift: DriftParams
    monitoring: MonitoringParams
    ab_test: ABTestParams


class ParamsError(Exception):
    """params.yaml is missing, not YAML, or does not match the models above."""


def load_params(path: Path = DEFAULT_PATH) -> Params:
    return load_yaml_model(path, Params, ParamsError)


class _GateSection(BaseModel):
    """Only the ``gate:`` of a params file (another revision's other sections may differ)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    gate: dict[str, MetricGate]


def parse_gate(text: str, source: str) -> dict[str, MetricGate]:
    """The ``gate:`` rules of a params file's text (e.g. the base branch's params.yaml)."""
    return parse_yaml_model(text, source, _GateSection, ParamsError).gate
