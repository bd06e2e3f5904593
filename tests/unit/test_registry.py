"""The registry decisions (promote, rollback) on fixture versions: no MLflow, no server."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from churn.artifacts import RunRecord
from churn.errors import RegistryError, TrackingError
from churn.params import MetricGate
from churn.registry import (
    PREVIOUS_TAG,
    VersionFacts,
    held_out_metrics,
    plan_promotion,
    plan_rollback,
    recorded_version,
    rollback_target,
)
from churn.tracking import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION

GATES = {
    "roc_auc": MetricGate(limit=0.83, max_regression=0.01),
    "brier": MetricGate(limit=0.16, max_regression=0.01, higher_is_better=False),
}
GOOD = {"roc_auc": 0.842, "brier": 0.138}
# Within the limits, but 0.0165 worse on Brier than GOOD: a first champion, never a successor.
WORSE = {"roc_auc": 0.833, "brier": 0.1545}
MODEL = "churn-classifier"


def test_held_out_metrics_are_the_runs_test_metrics_by_their_metrics_json_name() -> None:
    run = {"cv_roc_auc": 0.846, "test_roc_auc": 0.842, "test_brier": 0.138}
    assert held_out_metrics(run) == {"roc_auc": 0.842, "brier": 0.138}


def test_first_promotion_is_held_to_the_limits_only() -> None:
    plan = plan_promotion(MODEL, VersionFacts("1", WORSE), None, GATES, challenger="1")
    assert plan.passed
    assert plan.moves == {CHAMPION: "1", PREVIOUS_CHAMPION: None, CHALLENGER: None}
    assert plan.tags == {PREVIOUS_TAG: None}
    assert "no baseline yet" in plan.render()
    assert "PROMOTED churn-classifier v1 to champion (was: none)" in plan.render()


def test_first_promotion_below_a_limit_is_refused_with_the_numbers() -> None:
    low = {"roc_auc": 0.82, "brier": 0.138}
    plan = plan_promotion(MODEL, VersionFacts("1", low), None, GATES, challenger="1")
    assert not plan.passed
    assert plan.moves == {}
    text = plan.render()
    assert "roc_auc: 0.8200 is below the floor of 0.83" in text
    assert "REFUSED: churn-classifier v1 is not promoted" in text


def test_a_regression_against_the_champion_is_refused_and_nothing_moves() -> None:
    champion = VersionFacts("2", GOOD, previous_champion="1")
    plan = plan_promotion(MODEL, VersionFacts("3", WORSE), champion, GATES, challenger="3")
    assert not plan.passed
    assert (plan.moves, plan.tags) == ({}, {})
    lines = plan.render().splitlines()
    header = ["metric", "v3", "(candidate)", "v2", "(champion)", "limit", "max", "regression"]
    assert lines[0].split() == header
    [brier] = [line.split() for line in lines if line.strip().startswith("brier")]
    assert brier == ["brier", "0.1545", "0.1380", "<=", "0.16", "0.01", "FAILED"]
    assert "  - brier: 0.1545 is 0.0165 worse than the baseline's 0.1380 (allowed: 0.01)" in lines
    assert lines[-1] == "REFUSED: churn-classifier v3 is not promoted; champion stays v2"


def test_a_promotion_records_the_champion_it_replaces() -> None:
    champion = VersionFacts("2", GOOD)
    better = {"roc_auc": 0.85, "brier": 0.13}
    plan = plan_promotion(MODEL, VersionFacts("3", better), champion, GATES, challenger="3")
    assert plan.passed
    assert plan.moves == {CHAMPION: "3", PREVIOUS_CHAMPION: "2", CHALLENGER: None}
    assert plan.tags == {PREVIOUS_TAG: "2"}
    assert plan.render().endswith("`churn rollback` restores v2")


def test_promoting_a_given_version_leaves_a_newer_challenger_alone() -> None:
    plan = plan_promotion(
        MODEL, VersionFacts("3", GOOD), VersionFacts("2", GOOD), GATES, challenger="4"
    )
    assert plan.moves == {CHAMPION: "3", PREVIOUS_CHAMPION: "2"}


def test_promoting_the_champion_again_changes_nothing() -> None:
    champion = VersionFacts("2", GOOD)
    plan = plan_promotion(MODEL, VersionFacts("2", GOOD), champion, GATES, challenger=None)
    assert plan.passed
    assert plan.moves == {}
    assert plan.render() == "churn-classifier v2 already is the champion; nothing to do"


def test_a_version_without_held_out_metrics_is_an_error_not_a_verdict() -> None:
    with pytest.raises(RegistryError, match=r"v4: its run has no test_brier; run `churn evaluate`"):
        plan_promotion(MODEL, VersionFacts("4", {"roc_auc": 0.84}), None, GATES, challenger="4")
    assert issubclass(RegistryError, TrackingError)  # the CLI's exit code 2


def test_a_run_file_names_a_version_only_in_the_registry_it_was_logged_to() -> None:
    server = "http://127.0.0.1:5000"
    record = RunRecord(server, "churn", "0" * 32, "models:/m-1", MODEL, "7")
    assert recorded_version(record, model=MODEL, uri=server) == "7"
    with pytest.raises(RegistryError, match=r"registered in sqlite:///mlflow\.db, not in http"):
        recorded_version(
            RunRecord("sqlite:///mlflow.db", "churn", "0" * 32, "models:/m-1", MODEL, "7"),
            model=MODEL,
            uri=server,
        )
    with pytest.raises(RegistryError, match="names the model other, not churn-classifier"):
        recorded_version(
            RunRecord(server, "churn", "0" * 32, "models:/m-1", "other", "7"),
            model=MODEL,
            uri=server,
        )


def test_rollback_needs_a_champion_with_a_recorded_predecessor() -> None:
    with pytest.raises(RegistryError, match="has no @champion"):
        rollback_target(MODEL, None)
    with pytest.raises(RegistryError, match="v1 is the first recorded champion"):
        rollback_target(MODEL, VersionFacts("1", GOOD))
    assert rollback_target(MODEL, VersionFacts("3", GOOD, previous_champion="2")) == "2"
    with pytest.raises(RegistryError, match="v1 is not the previous champion"):
        plan_rollback(
            MODEL, VersionFacts("3", GOOD, previous_champion="2"), VersionFacts("1", GOOD)
        )


@dataclass
class Registry:
    """A registry's state as the plans see it; plans are applied the way `registry` does."""

    metrics: dict[str, dict[str, float]]
    aliases: dict[str, str] = field(default_factory=dict)
    previous: dict[str, str] = field(default_factory=dict)  # version -> its PREVIOUS_TAG

    def facts(self, version: str | None) -> VersionFacts | None:
        if version is None:
            return None
        return VersionFacts(version, self.metrics[version], self.previous.get(version))

    def move(self, moves: dict[str, str | None]) -> None:
        for alias, version in moves.items():
            if version is None:
                self.aliases.pop(alias, None)
            else:
                self.aliases[alias] = version

    def train(self, version: str, metrics: dict[str, float]) -> None:
        self.metrics[version] = metrics
        self.aliases[CHALLENGER] = version

    def promote(self) -> bool:
        candidate = self.facts(self.aliases[CHALLENGER])
        assert candidate is not None
        champion = self.facts(self.aliases.get(CHAMPION))
        plan = plan_promotion(
            MODEL, candidate, champion, GATES, challenger=self.aliases[CHALLENGER]
        )
        for key, value in plan.tags.items():
            assert key == PREVIOUS_TAG
            if value is None:
                self.previous.pop(candidate.version, None)
            else:
                self.previous[candidate.version] = value
        self.move(plan.moves)
        return plan.passed

    def rollback(self) -> str:
        champion = self.facts(self.aliases.get(CHAMPION))
        target = self.facts(rollback_target(MODEL, champion))
        assert target is not None
        plan = plan_rollback(MODEL, champion, target)
        self.move(plan.moves)
        return plan.restored


def test_rollbacks_walk_back_through_the_champions_in_the_order_they_served() -> None:
    registry = Registry(metrics={})
    for version, metrics in [("1", GOOD), ("2", GOOD), ("3", WORSE), ("4", GOOD)]:
        registry.train(version, metrics)
        registry.promote()
    # v3 was refused; it stays the challenger until v4 replaces it.
    assert registry.aliases == {CHAMPION: "4", PREVIOUS_CHAMPION: "2"}
    assert registry.rollback() == "2"
    assert registry.aliases == {CHAMPION: "2", PREVIOUS_CHAMPION: "1"}
    assert registry.rollback() == "1"
    assert registry.aliases == {CHAMPION: "1"}
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        registry.rollback()
    # A new champion after a rollback replaces the restored one, not the rolled-back one.
    registry.train("5", GOOD)
    assert registry.promote()
    assert registry.aliases == {CHAMPION: "5", PREVIOUS_CHAMPION: "1"}
    assert registry.rollback() == "1"
