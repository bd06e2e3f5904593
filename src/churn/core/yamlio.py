"""Reading the YAML files people edit (params.yaml, contract.yaml) into typed models."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


def load_yaml_model(path: Path, model: type[ModelT], error: type[Exception]) -> ModelT:
    """``path`` parsed into ``model``. Any problem raises ``error`` with one line that
    names the file and, for a value that does not fit, every offending field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from None
    return parse_yaml_model(text, str(path), model, error)


def parse_yaml_model(text: str, source: str, model: type[ModelT], error: type[Exception]) -> ModelT:
    """``text`` (read from ``source``, which error messages name) parsed into ``model``."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise error(f"{source}: not valid YAML ({reason})") from None
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'top level'}: {err['msg']}"
            for err in exc.errors()
        )
        raise error(f"{source}: {problems}") from None
