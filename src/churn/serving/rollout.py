"""Rollouts inside one process: two model slots, an A/B test and shadow scoring.

The service holds the **active** model and, beside it, optionally a
**standby** one: blue/green inside the deployment, so the model can change
without a new container. The standby has a role:

- ``candidate``: loaded, never active yet. An A/B test sends it a share of
  the records (``CHURN_AB_CHALLENGER_SHARE``, by a stable hash of the record
  id), shadow mode has it score the champion's records (``CHURN_SHADOW``);
  ``switch`` makes it active.
- ``previous``: the model the last ``switch`` replaced, kept loaded so that
  ``rollback`` is instant. It gets no traffic.

``rollback`` is the exact undo of ``switch``: the previous model is active
again and the one rolled back from is the candidate again (an A/B test it
was in resumes). A repeated ``switch`` or ``rollback``, such as a client
retrying, is refused (`RolloutError`, HTTP 409), never a second swap.

Everything a request reads is one immutable `Traffic` object, held in one
attribute (`Rollout.traffic`). A change builds a new one and replaces the
reference in a single assignment on the event loop. A request reads the
reference once, when it starts, and finishes on the models it started with,
whatever happens meanwhile. Loading runs in a worker thread, so requests
are served while a model loads.

Only the standard library, numpy and the serving modules: the container
imports this.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, NamedTuple, TypeVar

from churn.core.errors import ModelError
from churn.monitoring.abtest import CHALLENGER, CHAMPION, variant_for
from churn.serving import loader
from churn.serving.schemas import Variant

if TYPE_CHECKING:
    from churn.core.contract import Contract
    from churn.serving.loader import LoadedModel
    from churn.serving.middleware import ServiceMetrics
    from churn.serving.settings import ServingSettings

log = logging.getLogger(__name__)

Role = Literal["candidate", "previous"]
CANDIDATE: Role = "candidate"
PREVIOUS: Role = "previous"
Numeric = Sequence[Sequence[float]]
Categorical = Sequence[Sequence[str]]
RowT = TypeVar("RowT")
T = TypeVar("T")


class RolloutError(Exception):
    """The slots do not allow the action now (no standby, a load under way, ...)."""


@dataclass(frozen=True, slots=True)
class Slots:
    """The active model and the standby (if any), with the standby's role."""

    active: LoadedModel
    standby: LoadedModel | None = None
    role: Role | None = None  # the standby's; None without a standby

    @property
    def candidate(self) -> LoadedModel | None:
        """The model an A/B test or shadow mode may send traffic to."""
        return self.standby if self.role == CANDIDATE else None

    def load(self, model: LoadedModel) -> Slots:
        """``model`` as the new candidate; it replaces any standby, a previous model too."""
        return Slots(self.active, model, CANDIDATE)

    def switch(self) -> Slots:
        if self.standby is None:
            raise RolloutError("no standby model to switch to: load one first")
        if self.role != CANDIDATE:
            raise RolloutError(
                "the standby is the model the last switch replaced: roll back to it, "
                "or load a new candidate"
            )
        return Slots(self.standby, self.active, PREVIOUS)

    def rollback(self) -> Slots:
        if self.standby is None or self.role != PREVIOUS:
            raise RolloutError("nothing to roll back: no switch since the standby was loaded")
        return Slots(self.standby, self.active, CANDIDATE)

    def unload(self) -> Slots:
        if self.standby is None:
            raise RolloutError("no standby model loaded")
        return Slots(self.active)


class ShadowScores(NamedTuple):
    """The shadow model's scores, aligned with the records (None: the challenger answered)."""

    model: LoadedModel
    scores: list[float | None]


class ShadowScorer:
    """The candidate scoring the champion's records: failures are counted, never raised."""

    def __init__(self, model: LoadedModel, metrics: ServiceMetrics) -> None:
        self.model = model
        self._metrics = metrics
        self._warned = False

    def score(self, numeric: Numeric, categorical: Categorical) -> list[float] | None:
        try:
            scores: list[float] = self.model.model.predict(numeric, categorical).tolist()
        except Exception:  # a shadow must never fail a request, whatever went wrong
            self._metrics.shadow_failures.inc()
            if not self._warned:  # once per loaded model, not once per request
                self._warned = True
                log.exception("shadow scoring with %s failed", self.model.sha256[:12])
            return None
        self._metrics.shadow_scored.inc(len(scores))
        return scores


@dataclass(frozen=True, slots=True)
class Scored:
    """A request's scores, who answered each record and the shadow's scores."""

    scores: list[float]
    variants: list[Variant] | None  # per record; None: the champion answered all
    shadow: ShadowScores | None  # None: shadow mode off, or it failed


@dataclass(frozen=True, slots=True)
class Traffic:
    """Which model answers which record: the slots and the settings, fixed together."""

    slots: Slots
    challenger: LoadedModel | None = None  # answers `share` of the records (A/B test on)
    shadow: ShadowScorer | None = None  # scores the champion's records (shadow mode on)
    share: float = 0.0
    salt: str = ""

    @classmethod
    def build(cls, slots: Slots, settings: ServingSettings, metrics: ServiceMetrics) -> Traffic:
        candidate = slots.candidate
        if candidate is None:
            return cls(slots)
        share = settings.ab_challenger_share
        return cls(
            slots,
            challenger=candidate if share > 0 else None,
            shadow=ShadowScorer(candidate, metrics) if settings.shadow else None,
            share=share,
            salt=settings.ab_salt,
        )

    @property
    def champion(self) -> LoadedModel:
        return self.slots.active

    def variant(self, record_id: str | None) -> Variant:
        """Stable per record id (`churn.monitoring.abtest.variant_for`); no id: the champion."""
        if self.challenger is None or record_id is None:
            return CHAMPION
        if variant_for(record_id, self.share, self.salt) == CHALLENGER:
            return CHALLENGER
        return CHAMPION

    def model(self, variant: Variant) -> LoadedModel:
        if variant == CHALLENGER and self.challenger is not None:
            return self.challenger
        return self.champion

    def score(
        self, numeric: Numeric, categorical: Categorical, record_ids: Sequence[str | None]
    ) -> Scored:
        """Score records (rows of the model's two inputs), each with its variant's model.

        One ONNX run per model that answers someone, plus one for the shadow.
        """
        champion_rows: list[int] | None = None  # None: all of them
        if self.challenger is None:
            scores: list[float] = self.champion.model.predict(numeric, categorical).tolist()
            variants = None
        else:
            variants = [self.variant(record_id) for record_id in record_ids]
            champion_rows = [i for i, v in enumerate(variants) if v == CHAMPION]
            if len(champion_rows) == len(variants):
                champion_rows = None
                scores = self.champion.model.predict(numeric, categorical).tolist()
            elif not champion_rows:
                scores = self.challenger.model.predict(numeric, categorical).tolist()
            else:
                challenger_rows = [i for i, v in enumerate(variants) if v == CHALLENGER]
                scores = [0.0] * len(variants)
                for model, rows in (
                    (self.champion, champion_rows),
                    (self.challenger, challenger_rows),
                ):
                    subset = model.model.predict(_rows(numeric, rows), _rows(categorical, rows))
                    for row, score in zip(rows, subset.tolist(), strict=True):
                        scores[row] = score
        return Scored(scores, variants, self._shadow(numeric, categorical, champion_rows))

    def _shadow(
        self, numeric: Numeric, categorical: Categorical, champion_rows: list[int] | None
    ) -> ShadowScores | None:
        """The shadow's scores for the records the champion answered."""
        if self.shadow is None or champion_rows == []:
            return None
        if champion_rows is None:
            scores = self.shadow.score(numeric, categorical)
            return None if scores is None else ShadowScores(self.shadow.model, list(scores))
        subset = self.shadow.score(_rows(numeric, champion_rows), _rows(categorical, champion_rows))
        if subset is None:
            return None
        aligned: list[float | None] = [None] * len(numeric)
        for row, score in zip(champion_rows, subset, strict=True):
            aligned[row] = score
        return ShadowScores(self.shadow.model, aligned)


def _rows(rows: Sequence[RowT], picked: list[int]) -> list[RowT]:
    return [rows[i] for i in picked]


def load_model(
    settings: ServingSettings,
    contract: Contract,
    *,
    model_dir: Path | None = None,
    model_uri: str | None = None,
) -> LoadedModel:
    """Load a model exactly as the service loads its own: hash check and self-check."""
    source = settings.model_copy(
        update={"model_dir": model_dir or settings.model_dir, "model_uri": model_uri}
    )
    return loader.load(source, contract)


async def _in_daemon_thread(work: Callable[[], T], timeout_s: float | None) -> T:
    """``work()`` in a daemon thread; `TimeoutError` after ``timeout_s``.

    Not `asyncio.to_thread`: a load stuck in a system call (a FIFO, a hung
    mount) cannot be interrupted, and the default executor's thread would
    then hold up the process's shutdown. A daemon thread is left behind, and
    its late result is dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def run() -> None:
        try:
            result = work()
        except BaseException as exc:  # handed to the awaiting coroutine
            error = exc
            callback = functools.partial(settle, lambda: future.set_exception(error))
        else:
            callback = functools.partial(settle, lambda: future.set_result(result))
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(callback)

    threading.Thread(target=run, name="churn-model-load", daemon=True).start()
    return await asyncio.wait_for(future, timeout_s)


def load_challenger(settings: ServingSettings, contract: Contract) -> LoadedModel | None:
    """The candidate the settings name for start-up, if any."""
    if settings.challenger_model_dir is None and settings.challenger_model_uri is None:
        return None
    return load_model(
        settings,
        contract,
        model_dir=settings.challenger_model_dir,
        model_uri=settings.challenger_model_uri,
    )


class Rollout:
    """The app's model slots, and the only way to change them.

    ``traffic`` is what requests read (None before start-up and after
    shutdown). Every change goes through `_set`, which replaces it and
    updates the slot metrics.
    """

    def __init__(
        self, settings: ServingSettings, metrics: ServiceMetrics, contract: Contract
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.contract = contract  # what a model loaded at run time is checked against
        self.traffic: Traffic | None = None
        self.loading = False
        self._changes = 0  # counts changes; a load applies only if none happened meanwhile

    def start(self, active: LoadedModel, candidate: LoadedModel | None = None) -> None:
        slots = Slots(active)
        self._set(slots if candidate is None else slots.load(candidate))
        if candidate is None and (self.settings.ab_challenger_share > 0 or self.settings.shadow):
            log.info(
                "A/B test or shadow mode configured: it starts once a candidate is loaded "
                "(CHURN_CHALLENGER_MODEL_DIR or POST /admin/models/standby)"
            )

    def stop(self) -> None:
        self.traffic = None

    @property
    def slots(self) -> Slots:
        if self.traffic is None:
            raise RolloutError("the service is not started")
        return self.traffic.slots

    async def load(
        self,
        *,
        model_dir: Path | None = None,
        model_uri: str | None = None,
        timeout_s: float | None = None,
    ) -> Slots:
        """Load a model into the standby slot as the candidate, in a worker thread.

        Raises `ModelError` if it cannot be loaded (the slots are untouched),
        `RolloutError` if a load is already under way or the slots changed
        (a switch, rollback or unload) while this one loaded.
        """
        if self.loading:
            raise RolloutError("a model is already being loaded: wait for it to finish")
        where = model_uri or str(model_dir)
        self.loading = True
        changes = self._changes
        try:
            model = await _in_daemon_thread(
                functools.partial(
                    load_model,
                    self.settings,
                    self.contract,
                    model_dir=model_dir,
                    model_uri=model_uri,
                ),
                timeout_s,
            )
        except TimeoutError:
            self.metrics.model_loads.labels("failed").inc()
            log.warning("loading %s: abandoned after %s s", where, timeout_s)
            raise ModelError(f"{where}: not loaded within {timeout_s:g} s: abandoned") from None
        except ModelError:
            self.metrics.model_loads.labels("failed").inc()
            raise
        except Exception as exc:  # whatever it is, the candidate is at fault, not the service
            self.metrics.model_loads.labels("failed").inc()
            log.exception("loading %s failed", where)
            raise ModelError(f"{where}: cannot be loaded ({type(exc).__name__}: {exc})") from exc
        finally:
            self.loading = False
        if changes != self._changes:
            self.metrics.model_loads.labels("failed").inc()
            raise RolloutError("the slots changed while the model loaded: load it again")
        self._set(self.slots.load(model))
        self.metrics.model_loads.labels("loaded").inc()
        log.info("standby slot: candidate %s (sha256 %s…)", model.source, model.sha256[:12])
        return self.slots

    def switch(self) -> Slots:
        self._set(self.slots.switch())
        self.metrics.model_switches.labels("switch").inc()
        log.info("switched: active model is now sha256 %s…", self.slots.active.sha256[:12])
        return self.slots

    def rollback(self) -> Slots:
        self._set(self.slots.rollback())
        self.metrics.model_switches.labels("rollback").inc()
        log.info("rolled back: active model is now sha256 %s…", self.slots.active.sha256[:12])
        return self.slots

    def unload(self) -> Slots:
        self._set(self.slots.unload())
        log.info("standby slot emptied")
        return self.slots

    def _set(self, slots: Slots) -> None:
        self.traffic = Traffic.build(slots, self.settings, self.metrics)  # the one swap
        self._changes += 1
        active = slots.active
        self.metrics.model.clear()
        self.metrics.model.labels(active.version, active.sha256, active.card.estimator).set(1)
        self.metrics.model_slots.clear()
        self.metrics.model_slots.labels("active", "active", active.version, active.sha256).set(1)
        if slots.standby is not None and slots.role is not None:
            standby = slots.standby
            self.metrics.model_slots.labels(
                "standby", slots.role, standby.version, standby.sha256
            ).set(1)
