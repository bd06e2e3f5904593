"""The registry decisions (promote, rollback) on made-up versions: no MLflow, no server.

The gate is params.yaml's; each version's metrics are placed against its limits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from churn.core.artifacts import RunRecord
from churn.core.errors import RegistryError, TrackingError
from churn.core.params import MetricGate
from churn.registry.champion import (
    PREVIOUS_TAG,
    VersionFacts,
    held_out_metrics,
    plan_promotion,
    plan_rollback,
    recorded_version,
    rollback_target,
)
from churn.registry.tracking import CHALLENGER, CHAMPION, PREVIOUS_CHAMPION
from tests.support.params import (
    HEADROOM,
    at_limit,
    comfortable,
    limit_problem,
    nudged,
    regression_problem,
)

Gates = dict[str, MetricGate]
MODEL = "classifier"


@pytest.fixture
def good(gates: Gates) -> dict[str, float]:
    return comfortable(gates)


@pytest.fixture
def worse(gates: Gates) -> dict[str, float]:
    """Within the limits, but worse than ``good`` by more than allowed on every metric:
    a first champion, never a successor."""
    return at_limit(gates, HEADROOM / 10)


def test_held_out_metrics_are_the_runs_test_metrics_by_their_metrics_json_name() -> None:
    run = {"cv_roc_auc": 0.75, "test_roc_auc": 0.5, "test_brier": 0.25}
    assert held_out_metrics(run) == {"roc_auc": 0.5, "brier": 0.25}


def test_first_promotion_is_held_to_the_limits_only(gates: Gates, worse: dict[str, float]) -> None:
    plan = plan_promotion(MODEL, VersionFacts("1", worse), None, gates, challenger="1")
    assert plan.passed
    assert plan.moves == {CHAMPION: "1", PREVIOUS_CHAMPION: None, CHALLENGER: None}
    assert plan.tags == {PREVIOUS_TAG: None}
    assert "no baseline yet" in plan.render()
    assert f"PROMOTED {MODEL} v1 to champion (was: none)" in plan.render()


def test_first_promotion_beyond_a_limit_is_refused_with_the_numbers(
    gates: Gates, good: dict[str, float]
) -> None:
    metric = next(iter(gates))
    low = good | {metric: nudged(gates[metric], gates[metric].limit, -HEADROOM)}
    plan = plan_promotion(MODEL, VersionFacts("1", low), None, gates, challenger="1")
    assert not plan.passed
    assert plan.moves == {}
    text = plan.render()
    assert limit_problem(metric, gates[metric], low[metric]) in text
    assert f"REFUSED: {MODEL} v1 is not promoted" in text


def test_a_regression_against_the_champion_is_refused_and_nothing_moves(
    gates: Gates, good: dict[str, float], worse: dict[str, float]
) -> None:
    champion = VersionFacts("2", good, previous_champion="1")
    plan = plan_promotion(MODEL, VersionFacts("3", worse), champion, gates, challenger="3")
    assert not plan.passed
    assert (plan.moves, plan.tags) == ({}, {})
    lines = plan.render().splitlines()
    header = ["metric", "v3", "(candidate)", "v2", "(champion)", "limit", "max", "regression"]
    assert lines[0].split() == header
    for metric, gate in gates.items():
        [row] = [line.split() for line in lines if line.split()[:1] == [metric]]
        sign = ">=" if gate.higher_is_better else "<="
        assert row == [
            metric,
            f"{worse[metric]:.4f}",
            f"{good[metric]:.4f}",
            sign,
            f"{gate.limit:g}",
            f"{gate.max_regression:g}",
            "FAILED",
        ]
        assert f"  - {regression_problem(metric, gate, worse[metric], good[metric])}" in lines
    assert lines[-1] == f"REFUSED: {MODEL} v3 is not promoted; champion stays v2"


def test_a_promotion_records_the_champion_it_replaces(gates: Gates, good: dict[str, float]) -> None:
    champion = VersionFacts("2", good)
    better = {m: nudged(g, good[m], HEADROOM) for m, g in gates.items()}
    plan = plan_promotion(MODEL, VersionFacts("3", better), champion, gates, challenger="3")
    assert plan.passed
    assert plan.moves == {CHAMPION: "3", PREVIOUS_CHAMPION: "2", CHALLENGER: None}
    assert plan.tags == {PREVIOUS_TAG: "2"}
    assert plan.render().endswith("`churn rollback` restores v2")


def test_promoting_a_given_version_leaves_a_newer_challenger_alone(
    gates: Gates, good: dict[str, float]
) -> None:
    plan = plan_promotion(
        MODEL, VersionFacts("3", good), VersionFacts("2", good), gates, challenger="4"
    )
    assert plan.moves == {CHAMPION: "3", PREVIOUS_CHAMPION: "2"}


def test_promoting_the_champion_again_changes_nothing(gates: Gates, good: dict[str, float]) -> None:
    champion = VersionFacts("2", good)
    plan = plan_promotion(MODEL, VersionFacts("2", good), champion, gates, challenger=None)
    assert plan.passed
    assert plan.moves == {}
    assert plan.render() == f"{MODEL} v2 already is the champion; nothing to do"


def test_a_version_without_held_out_metrics_is_an_error_not_a_verdict(gates: Gates) -> None:
    missing = ", ".join(f"test_{m}" for m in sorted(gates))
    with pytest.raises(RegistryError, match=rf"v4: its run has no {missing}; run `churn evaluate`"):
        plan_promotion(MODEL, VersionFacts("4", {}), None, gates, challenger="4")
    assert issubclass(RegistryError, TrackingError)  # the CLI's exit code 2


def test_a_run_file_names_a_version_only_in_the_registry_it_was_logged_to() -> None:
    server = "http://127.0.0.1:5000"
    record = RunRecord(server, "churn", "0" * 32, "models:/m-1", MODEL, "7", "a" * 64)
    assert recorded_version(record, model=MODEL, uri=server) == "7"
    with pytest.raises(RegistryError, match=r"registered in sqlite:///mlflow\.db, not in http"):
        recorded_version(
            RunRecord(
                "sqlite:///mlflow.db", "churn", "0" * 32, "models:/m-1", MODEL, "7", "a" * 64
            ),
            model=MODEL,
            uri=server,
        )
    with pytest.raises(RegistryError, match=f"names the model other, not {MODEL} "):
        recorded_version(
            RunRecord(server, "churn", "0" * 32, "models:/m-1", "other", "7", "a" * 64),
            model=MODEL,
            uri=server,
        )


def test_rollback_needs_a_champion_with_a_recorded_predecessor(good: dict[str, float]) -> None:
    with pytest.raises(RegistryError, match="has no @champion"):
        rollback_target(MODEL, None)
    with pytest.raises(RegistryError, match="v1 is the first recorded champion"):
        rollback_target(MODEL, VersionFacts("1", good))
    assert rollback_target(MODEL, VersionFacts("3", good, previous_champion="2")) == "2"
    with pytest.raises(RegistryError, match="v1 is not the previous champion"):
        plan_rollback(
            MODEL, VersionFacts("3", good, previous_champion="2"), VersionFacts("1", good)
        )


@dataclass
class Registry:
    """A registry's state as the plans see it; plans are applied the way `registry` does."""

    gates: Gates
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
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
            MODEL, candidate, champion, self.gates, challenger=self.aliases[CHALLENGER]
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


def test_rollbacks_walk_back_through_the_champions_in_the_order_they_served(
    gates: Gates, good: dict[str, float], worse: dict[str, float]
) -> None:
    registry = Registry(gates)
    for version, metrics in [("1", good), ("2", good), ("3", worse), ("4", good)]:
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
    registry.train("5", good)
    assert registry.promote()
    assert registry.aliases == {CHAMPION: "5", PREVIOUS_CHAMPION: "1"}
    assert registry.rollback() == "1"
