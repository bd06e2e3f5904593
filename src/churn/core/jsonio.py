"""Reading the JSON files the package writes (cards, reports, metrics): one way, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from churn.core.errors import DataError


def read_json_object(
    path: Path, error: type[Exception] = DataError, hint: str = ""
) -> dict[str, Any]:
    """The JSON object in ``path``. Any problem (missing, unreadable, not JSON, not an
    object) raises ``error`` with one line that names the file, then ``hint``."""
    suffix = f"; {hint}" if hint else ""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: not found{suffix}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read it ({exc.strerror}){suffix}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc}){suffix}") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object{suffix}")
    return data
