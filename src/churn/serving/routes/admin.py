"""``/admin``: the model slots. Load a candidate beside the active model, switch, roll back.

Mounted only with ``CHURN_ADMIN_ENABLED=true``, which needs
``CHURN_ADMIN_API_KEY``: every route requires it in ``X-API-Key`` (never
the prediction key). The rules are `churn.serving.rollout`'s;
every answer describes both slots as they are afterwards.

The slots belong to one process: behind a load balancer with several
replicas, call each replica (or set ``CHURN_CHALLENGER_MODEL_DIR`` and
restart them).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError

from churn.core.errors import ModelError
from churn.serving.deps import RolloutDep
from churn.serving.drift_monitor import DriftMonitor
from churn.serving.loader import LoadedModel, ModelPinError
from churn.serving.rollout import Rollout, RolloutError, Slots
from churn.serving.schemas import HTTPError, LoadModel, SlotModel, SlotsInfo, ValidationProblems

CONFLICT = {
    "model": HTTPError,
    "description": "The slots do not allow it now (no standby, a load under way, ...).",
}

# The admin-key dependency is added by `create_app`.
router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses={
        401: {"model": HTTPError, "description": "Missing or wrong X-API-Key (the admin key)."},
        503: {"model": HTTPError, "description": "The service is not started."},
    },
)


@router.get("/models")
async def slots(rollout: RolloutDep) -> SlotsInfo:
    """Both slots: the active model, the standby and its role, and what traffic it gets."""
    return _describe(rollout, rollout.slots)


@router.post(
    "/models/standby",
    responses={
        400: {"model": HTTPError, "description": "Body is not decodable (e.g. not UTF-8)."},
        409: {
            "model": HTTPError,
            "description": "The slots do not allow it now, or the model is not the one "
            "CHURN_MODEL_SHA256 pins; the slots are unchanged.",
        },
        413: {"model": HTTPError, "description": "Request body too large."},
        422: {
            "model": ValidationProblems,
            "description": "Invalid body, or a model that cannot be loaded (missing, corrupt, "
            "failed its self-check); the slots are unchanged.",
        },
    },
)
async def load(body: LoadModel, rollout: RolloutDep) -> SlotsInfo:
    """Load a model into the standby slot as the candidate, beside the active one.

    The same checks as at start-up (hash against the card, the pinned hash
    if ``CHURN_MODEL_SHA256`` is set, self-check on its reference rows); it
    runs in a worker thread, requests are answered meanwhile, and it is
    abandoned after ``CHURN_ADMIN_LOAD_TIMEOUT_S``. ``model_dir`` is read
    relative to ``CHURN_ADMIN_MODELS_ROOT`` and must stay under it. A model
    that is refused leaves both slots as they were. It replaces whatever
    the standby held (a previous model too).
    """
    field = "model_dir" if body.model_dir is not None else "model_uri"
    settings = rollout.settings
    root = settings.models_root
    model_dir = None if body.model_dir is None else _under_root(body.model_dir, root)
    try:
        slots = await rollout.load(
            model_dir=model_dir,
            model_uri=body.model_uri,
            timeout_s=settings.admin_load_timeout_s,
        )
    except ModelPinError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, _hide(str(exc), root)) from None
    except ModelError as exc:
        problem = {
            "loc": ("body", field),
            "msg": _hide(str(exc), root),
            "type": "model_not_loadable",
        }
        raise RequestValidationError([problem]) from None
    except RolloutError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    return _describe(rollout, slots)


def _under_root(given: str, root: Path) -> Path:
    """``given`` (relative to ``root``, or absolute) resolved, if it is under ``root``.

    Otherwise one 422 whatever the reason (outside, ``..``, a symlink out):
    the answer must not tell what exists outside the root.
    """
    resolved = Path(os.path.realpath(root / given))
    if resolved != root and not resolved.is_relative_to(root):
        problem = {
            "loc": ("body", "model_dir"),
            "msg": "not a directory under the models root (CHURN_ADMIN_MODELS_ROOT)",
            "type": "model_not_loadable",
        }
        raise RequestValidationError([problem])
    return resolved


def _hide(message: str, root: Path) -> str:
    """``message`` with the models root's location taken out (paths shown relative to it)."""
    return message.replace(f"{root}{os.sep}", "").replace(str(root), ".")


@router.delete("/models/standby", responses={409: CONFLICT})
async def unload(rollout: RolloutDep) -> SlotsInfo:
    """Empty the standby slot: ends an A/B test or shadow mode, and the way back."""
    return _describe(rollout, _change(rollout.unload))


@router.post("/models/switch", responses={409: CONFLICT})
async def switch(request: Request, rollout: RolloutDep) -> SlotsInfo:
    """Make the candidate the active model, at once; the old one stays loaded for rollback.

    Requests already being answered finish on the model they started with.
    409 unless the standby is a candidate (so a retried switch does not swap back).
    """
    slots = _change(rollout.switch)
    _follow_active_model(request, rollout)
    return _describe(rollout, slots)


@router.post("/models/rollback", responses={409: CONFLICT})
async def rollback(request: Request, rollout: RolloutDep) -> SlotsInfo:
    """Undo the last switch, at once: the previous model is active, the other the candidate.

    409 unless the last change was a switch (so a retried rollback does nothing).
    """
    slots = _change(rollout.rollback)
    _follow_active_model(request, rollout)
    return _describe(rollout, slots)


def _follow_active_model(request: Request, rollout: Rollout) -> None:
    """Live drift is measured against the active model's training data: a new
    active model gets a new, empty window (or none, if it has no drift profile)."""
    state = request.app.state
    state.drift = DriftMonitor.start(rollout.slots.active, state.settings, state.metrics)


def _change(action: Callable[[], Slots]) -> Slots:
    try:
        return action()
    except RolloutError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None


def _describe(rollout: Rollout, slots: Slots) -> SlotsInfo:
    traffic = rollout.traffic
    return SlotsInfo(
        active=_slot(slots.active),
        standby=None if slots.standby is None else _slot(slots.standby),
        standby_role=slots.role,
        ab_test=traffic is not None and traffic.challenger is not None,
        ab_challenger_share=rollout.settings.ab_challenger_share,
        shadow=traffic is not None and traffic.shadow is not None,
        loading=rollout.loading,
    )


def _slot(model: LoadedModel) -> SlotModel:
    return SlotModel(
        version=model.version,
        source=model.source,
        sha256=model.sha256,
        estimator=model.card.estimator,
        threshold=model.card.threshold,
    )
