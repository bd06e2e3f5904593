"""The model a scoring run uses: loaded and checked exactly as the service loads it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from churn.core.errors import ModelError

if TYPE_CHECKING:
    from pathlib import Path

    from churn.core.contract import Contract
    from churn.serving.loader import LoadedModel


def load_model(
    contract: Contract, *, model_dir: Path | None = None, model_uri: str | None = None
) -> LoadedModel:
    """The model of ``model_dir`` or ``model_uri``, else the service's settings
    (``CHURN_MODEL_DIR``, ``CHURN_MODEL_URI``, ``CHURN_MODEL_SHA256``).

    `churn.serving.loader.load` does the work: the ONNX file's hash against its
    card, the pin, the self-check on the card's reference rows. A batch run
    and the service therefore refuse the same models.
    """
    from pydantic import ValidationError

    from churn.serving import loader
    from churn.serving.settings import ServingSettings

    update: dict[str, Any] = {}
    if model_dir is not None:
        update |= {"model_dir": model_dir, "model_uri": None}
    if model_uri is not None:
        update["model_uri"] = model_uri
    try:
        settings = ServingSettings().model_copy(update=update)
    except ValidationError as exc:
        problems = "; ".join(
            f"{e['loc'][0]}: {e['msg']}" if e["loc"] else e["msg"] for e in exc.errors()
        )
        raise ModelError(f"invalid model settings: {problems}") from None
    return loader.load(settings, contract)
