"""The model registry flow: `challenger` → quality gate → `champion`, and back.

MLflow aliases, not the deprecated stages:

- ``challenger``: set by `train` on every new version; a version awaiting a decision.
- ``champion``: what the service loads (``models:/churn-classifier@champion``).
- ``previous_champion``: the version `rollback` would restore, for people and the UI.

`promote` moves ``champion`` to the challenger (or a given version) only when
its held-out metrics (the ``test_*`` metrics `evaluate` logs to its run) pass
`churn.release.gate.check_gate` against the current champion's: the limits and the
largest allowed regression of ``params.yaml``'s ``gate``. With no champion yet
the limits alone decide.

History lives on the versions themselves: a version that becomes champion is
tagged ``previous_champion=<the version it replaced>``. `rollback` follows the
current champion's tag, so repeated rollbacks walk back through the champions
in the order they served, and a version trained later never gets in the way.
A rolled-back version is tagged ``rolled_back_at``; it is not a challenger
any more, so a later `promote` does not bring it back by accident.

The decisions (`plan_promotion`, `plan_rollback`) are pure functions of the
registry's state; `promote` and `rollback` read that state, apply the plan and
return it. MLflow is imported inside the functions that talk to the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from churn.core.errors import RegistryError
from churn.registry.tracking import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    bounded_requests,
    failure_reason,
    quiet_mlflow,
    tracking_uri,
)
from churn.release.gate import GateResult, check_gate

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mlflow import MlflowClient

    from churn.core.artifacts import RunRecord
    from churn.core.params import MetricGate
    from churn.registry.tracking import TrackingSettings

# `evaluate` logs the held-out metrics to the training run with this prefix.
HELD_OUT_PREFIX = "test_"
PREVIOUS_TAG = "previous_champion"
PROMOTED_TAG = "promoted_at"
ROLLED_BACK_TAG = "rolled_back_at"

# alias → version to point it at, or None to remove it
AliasMoves = dict[str, str | None]


@dataclass(frozen=True)
class VersionFacts:
    """What the decisions need to know about one registered version."""

    version: str
    metrics: Mapping[str, float]  # held-out metrics, without the ``test_`` prefix
    previous_champion: str | None = None  # the version it replaced as champion
    tags: frozenset[str] = frozenset()  # names of the version's tags


@dataclass(frozen=True)
class Promotion:
    model: str
    candidate: VersionFacts
    champion: VersionFacts | None
    gate: GateResult | None  # None: the candidate already is the champion
    moves: AliasMoves = field(default_factory=dict)
    tags: dict[str, str | None] = field(default_factory=dict)  # for the candidate; None: remove

    @property
    def passed(self) -> bool:
        return self.gate is None or self.gate.passed

    def render(self) -> str:
        v, model = self.candidate.version, self.model
        if self.gate is None:
            return f"{model} v{v} already is the {CHAMPION}; nothing to do"
        was = f"v{self.champion.version}" if self.champion else None
        lines = [*metrics_table(self.candidate, self.champion, self.gate), self.gate.render()]
        if self.passed:
            restores = f"; `churn rollback` restores {was}" if was else ""
            lines.append(f"PROMOTED {model} v{v} to {CHAMPION} (was: {was or 'none'}){restores}")
        else:
            stays = f"; {CHAMPION} stays {was}" if was else ""
            lines.append(f"REFUSED: {model} v{v} is not promoted{stays}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Rollback:
    model: str
    demoted: str
    restored: str
    next_restore: str | None  # what a further rollback would restore
    moves: AliasMoves

    def render(self) -> str:
        further = f"v{self.next_restore}" if self.next_restore else "nothing (no earlier champion)"
        return (
            f"ROLLED BACK {self.model}: {CHAMPION} v{self.demoted} -> v{self.restored}; "
            f"a further rollback would restore {further}"
        )


def held_out_metrics(run_metrics: Mapping[str, float]) -> dict[str, float]:
    """The ``test_*`` metrics of a run, by their name in ``metrics.json``."""
    return {
        name.removeprefix(HELD_OUT_PREFIX): value
        for name, value in run_metrics.items()
        if name.startswith(HELD_OUT_PREFIX)
    }


def metrics_table(
    candidate: VersionFacts, champion: VersionFacts | None, gate: GateResult
) -> list[str]:
    """Every gated metric with both versions' values, the limit and the allowed regression."""
    against = f"v{champion.version} (champion)" if champion else "(no champion)"
    rows = [("metric", f"v{candidate.version} (candidate)", against, "limit", "max regression", "")]
    for check in gate.checks:
        rule = check.gate
        rows.append(
            (
                check.metric,
                _number(check.value),
                _number(check.baseline),
                f"{'>=' if rule.higher_is_better else '<='} {rule.limit:g}",
                f"{rule.max_regression:g}",
                "ok" if check.passed else "FAILED",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        ("  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))).rstrip()
        for row in rows
    ]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def plan_promotion(
    model: str,
    candidate: VersionFacts,
    champion: VersionFacts | None,
    gates: Mapping[str, MetricGate],
    *,
    challenger: str | None,
) -> Promotion:
    """Decide whether ``candidate`` may replace ``champion``, and how the aliases move.

    Raises `RegistryError` when the candidate has no held-out metric for a
    gated one (its evaluation never ran): that is not a verdict on the model.
    """
    if champion is not None and champion.version == candidate.version:
        return Promotion(model, candidate, champion, gate=None)
    missing = sorted(set(gates) - set(candidate.metrics))
    if missing:
        names = ", ".join(HELD_OUT_PREFIX + name for name in missing)
        raise RegistryError(
            f"{model} v{candidate.version}: its run has no {names}; "
            "run `churn evaluate` (or `dvc repro`) before promoting it"
        )
    result = check_gate(
        candidate.metrics,
        champion.metrics if champion else None,
        gates,
        baseline_name=f"{CHAMPION} v{champion.version}" if champion else None,
    )
    if not result.passed:
        return Promotion(model, candidate, champion, result)
    previous = champion.version if champion else None
    moves: AliasMoves = {CHAMPION: candidate.version, PREVIOUS_CHAMPION: previous}
    if challenger == candidate.version:
        moves[CHALLENGER] = None  # decided: no longer awaiting promotion
    return Promotion(model, candidate, champion, result, moves, {PREVIOUS_TAG: previous})


def recorded_version(record: RunRecord, *, model: str, uri: str) -> str:
    """The version a run file (``reports/run/mlflow_run.json``) names, if it is in this registry.

    A model trained against another store (a laptop's SQLite file, another
    server) has a version number that means nothing here: refuse it.
    """
    if record.tracking_uri.rstrip("/") != uri.rstrip("/"):
        raise RegistryError(
            f"{model} v{record.version} was registered in {record.tracking_uri}, not in {uri}"
        )
    if record.registered_model != model:
        raise RegistryError(
            f"the run file names the model {record.registered_model}, not {model} "
            "(CHURN_REGISTERED_MODEL)"
        )
    return record.version


def plan_rollback(model: str, champion: VersionFacts | None, target: VersionFacts) -> Rollback:
    """Point ``champion`` back at ``target``, the version the current champion replaced."""
    if champion is None or champion.previous_champion != target.version:
        raise RegistryError(f"{model}: v{target.version} is not the previous {CHAMPION}")
    return Rollback(
        model,
        demoted=champion.version,
        restored=target.version,
        next_restore=target.previous_champion,
        moves={
            CHAMPION: target.version,
            PREVIOUS_CHAMPION: target.previous_champion,
        },
    )


def rollback_target(model: str, champion: VersionFacts | None) -> str:
    """The version a rollback restores: the one the current champion replaced."""
    if champion is None:
        raise RegistryError(f"{model} has no @{CHAMPION}: nothing to roll back")
    if champion.previous_champion is None:
        raise RegistryError(
            f"{model} v{champion.version} is the first recorded {CHAMPION}: nothing to roll back to"
        )
    return champion.previous_champion


# -- I/O: read the registry, apply a plan ------------------------------------------


def promote(
    settings: TrackingSettings,
    gates: Mapping[str, MetricGate],
    version: str | None = None,
    record: RunRecord | None = None,
) -> Promotion | None:
    """Promote ``version``, or the one ``record`` names, or the challenger, if it passes.

    Returns None when there is nothing to promote: no version given and no
    challenger (the last one was promoted, or nothing was trained since).
    """
    client, name = _client(settings)
    if record is not None:
        version = recorded_version(record, model=name, uri=tracking_uri())
    aliases = _aliases(client, name)
    candidate_version = version or aliases.get(CHALLENGER)
    if candidate_version is None:
        return None
    champion_version = aliases.get(CHAMPION)
    candidate = _facts(client, name, candidate_version)
    champion = _facts(client, name, champion_version) if champion_version else None
    plan = plan_promotion(name, candidate, champion, gates, challenger=aliases.get(CHALLENGER))
    if plan.moves:
        # History first, then the switch: an interrupted promotion leaves the
        # champion where it was.
        for key, value in {**plan.tags, PROMOTED_TAG: _now()}.items():
            _tag(client, name, candidate, key, value)
        _move(client, name, plan.moves, aliases)
    return plan


def rollback(settings: TrackingSettings) -> Rollback:
    """Move ``champion`` back to the version the current champion replaced."""
    client, name = _client(settings)
    aliases = _aliases(client, name)
    champion_version = aliases.get(CHAMPION)
    champion = _facts(client, name, champion_version) if champion_version else None
    target = _facts(client, name, rollback_target(name, champion))
    plan = plan_rollback(name, champion, target)
    _move(client, name, plan.moves, aliases)
    with _registry_errors(f"{name} v{plan.demoted}"):
        client.set_model_version_tag(name, plan.demoted, ROLLED_BACK_TAG, _now())
    return plan


def _client(settings: TrackingSettings) -> tuple[MlflowClient, str]:
    import mlflow

    quiet_mlflow()
    return mlflow.MlflowClient(tracking_uri=tracking_uri()), settings.registered_model


def _aliases(client: MlflowClient, name: str) -> dict[str, str]:
    """The model's aliases; the first request, bounded so that no server fails in seconds."""
    with _registry_errors(name), bounded_requests():
        aliases = client.get_registered_model(name).aliases
    return {str(alias): str(version) for alias, version in aliases.items()}


def _facts(client: MlflowClient, name: str, version: str) -> VersionFacts:
    with _registry_errors(f"{name} v{version}"):
        model_version = client.get_model_version(name, version)
        if not model_version.run_id:
            raise RegistryError(f"{name} v{version} was not logged by a run: no metrics to gate")
        run = client.get_run(model_version.run_id)
    return VersionFacts(
        version=str(model_version.version),
        metrics=held_out_metrics(run.data.metrics),
        previous_champion=model_version.tags.get(PREVIOUS_TAG),
        tags=frozenset(model_version.tags),
    )


def _move(client: MlflowClient, name: str, moves: AliasMoves, current: Mapping[str, str]) -> None:
    """Apply alias moves, ``champion`` first: the switch the service sees is one call."""
    with _registry_errors(name):
        for alias in sorted(moves, key=lambda a: a != CHAMPION):
            target = moves[alias]
            if target is not None:
                client.set_registered_model_alias(name, alias, target)
            elif alias in current:
                client.delete_registered_model_alias(name, alias)


def _tag(
    client: MlflowClient, name: str, version: VersionFacts, key: str, value: str | None
) -> None:
    """Set a version tag, or remove it (when it exists) for None."""
    with _registry_errors(f"{name} v{version.version}"):
        if value is not None:
            client.set_model_version_tag(name, version.version, key, value)
        elif key in version.tags:
            client.delete_model_version_tag(name, version.version, key)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextmanager
def _registry_errors(what: str) -> Iterator[None]:
    """MLflow's and the transport's exceptions as one-line `RegistryError`s."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as exc:  # MlflowException, requests' and OS errors
        raise RegistryError(f"{what} at {tracking_uri()}: {failure_reason(exc)}") from None
