"""A scoring run as Markdown: what the scheduled workflow puts in its job summary."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from churn.core.errors import DataError, first_line
from churn.scoring.local import Outputs

if TYPE_CHECKING:
    from pathlib import Path


def _read_json(location_text: str, what: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(location_text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{what}: not JSON ({first_line(exc)})") from None
    return data


def read_run_summary(output: str) -> dict[str, Any]:
    """The summary a run wrote beside ``output`` (local or S3)."""
    location = Outputs.beside(output).summary
    if not location.exists():
        raise DataError(f"{location.uri}: no such file (did `churn score` finish?)")
    with location.filesystem.open_input_stream(location.path) as stream:
        return _read_json(stream.read().decode(), location.uri)


def markdown(output: str, drift_json: Path | None = None) -> str:
    summary = read_run_summary(output)
    rows, model, scores = summary["rows"], summary["model"], summary["scores"]
    lines = [
        "## Batch scoring",
        "",
        f"Input `{summary['input']}` → `{summary['output']}` (rejects: `{summary['rejects']}`)",
        "",
        "| read | scored | rejected | flagged | mean probability |",
        "|---:|---:|---:|---:|---:|",
        f"| {rows['read']:,} | {rows['scored']:,} | {rows['rejected']:,} "
        f"| {scores['flagged']:,} | "
        + ("—" if scores["mean"] is None else f"{scores['mean']:.4f}")
        + " |",
        "",
        f"Model version `{model['version']}`, ONNX SHA-256 `{model['sha256']}`, "
        f"threshold {model['threshold']}.",
        "",
        "| probability | "
        + " | ".join(
            f"{lo:.1f}-{hi:.1f}"
            for lo, hi in zip(scores["edges"], scores["edges"][1:], strict=False)
        )
        + " |",
        "|---|" + "---:|" * len(scores["counts"]),
        "| rows | " + " | ".join(f"{c:,}" for c in scores["counts"]) + " |",
    ]
    if summary.get("drift") is not None:
        drift = summary["drift"]
        verdict = "**drift**" if drift["drift"] else "no drift"
        lines += [
            "",
            f"Scored rows vs the model's training profile: {verdict}"
            + (f" ({', '.join(drift['drifted_features'])})" if drift["drifted_features"] else ""),
        ]
    if drift_json is not None:
        if not drift_json.is_file():
            raise DataError(f"{drift_json}: no such file")
        drift = _read_json(drift_json.read_text(), str(drift_json))
        verdict = "**DRIFT**" if drift["drift"] else "NO DRIFT"
        drifted = drift["drifted_features"]
        lines += [
            "",
            f"`churn drift` on the same input vs `{drift['reference']['source']}`: {verdict}"
            + (f" ({', '.join(drifted)})" if drifted else ""),
        ]
    return "\n".join(lines) + "\n"
