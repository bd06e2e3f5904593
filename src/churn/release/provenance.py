"""Is this model the one Git records?

`dvc.lock` (in Git) names every pipeline output by its MD5; for a directory
such as ``models/`` that is the MD5 of DVC's manifest, the JSON list of its
files' MD5s. This module recomputes those hashes from the files on disk, with
neither DVC nor its cache, so a model that came from a tampered remote, an
old cache or a local edit cannot pass for the committed one. Only then is the
card's ``onnx_sha256`` a pin worth giving the service (``CHURN_MODEL_SHA256``):
`churn model-pin` prints it, the image build and `deploy/deploy.sh` use it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from churn.core.artifacts import CARD_FILE, ModelCard
from churn.core.errors import ModelError
from churn.release import revision

LOCK = "dvc.lock"
DIRECTORY_SUFFIX = ".dir"


class ProvenanceError(ModelError):
    """The files on disk are not the ones `dvc.lock` records."""


@dataclass(frozen=True)
class Recorded:
    """One output as `dvc.lock` records it."""

    stage: str
    path: str
    md5: str


def file_md5(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def directory_md5(directory: Path) -> str:
    """DVC's hash of a directory: the MD5 of its manifest, ``<md5>.dir``.

    The manifest is the JSON list of ``{"md5", "relpath"}`` for every file,
    sorted by path, as DVC serialises it (checked against `dvc.lock` in the
    tests).
    """
    files = sorted(
        (p for p in directory.rglob("*") if p.is_file()),
        key=lambda p: p.relative_to(directory).parts,
    )
    manifest = [{"md5": file_md5(p), "relpath": p.relative_to(directory).as_posix()} for p in files]
    text = json.dumps(manifest, sort_keys=True)
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest() + DIRECTORY_SUFFIX


def output_md5(path: Path) -> str | None:
    """The MD5 DVC would record for ``path`` (None when it does not exist)."""
    if path.is_dir():
        return directory_md5(path)
    if path.is_file():
        return file_md5(path)
    return None


def recorded_outputs(lock_text: bytes) -> list[Recorded]:
    data: Any = yaml.safe_load(lock_text) or {}
    stages = data.get("stages", {}) if isinstance(data, dict) else {}
    return [
        Recorded(stage, str(out["path"]), str(out["md5"]))
        for stage, body in stages.items()
        for out in body.get("outs", [])
        if "md5" in out
    ]


def lock_text(root: Path, commit: str | None) -> tuple[bytes, str]:
    """`dvc.lock` from ``commit`` (None: the working tree's), and where it came from."""
    if commit is None:
        path = root / LOCK
        if not path.is_file():
            raise ProvenanceError(f"{path}: not found (run the pipeline, or pass a commit)")
        return path.read_bytes(), str(path)
    text = revision.show(commit, LOCK)
    if text is None:
        raise ProvenanceError(f"{LOCK} is not committed at {commit}")
    return text, f"{LOCK} at {commit}"


def check_output(root: Path, target: Path, commit: str | None = None) -> Recorded:
    """`ProvenanceError` unless ``target`` is, byte for byte, the output `dvc.lock` records."""
    text, source = lock_text(root, commit)
    relative = target.resolve().relative_to(root.resolve()).as_posix()
    matches = [out for out in recorded_outputs(text) if out.path == relative]
    if not matches:
        raise ProvenanceError(f"{source} records no output {relative!r}")
    recorded = matches[0]
    actual = output_md5(root / relative)
    if actual is None:
        raise ProvenanceError(f"{relative}: not found (dvc pull or dvc repro)")
    if actual != recorded.md5:
        raise ProvenanceError(
            f"{relative} is not the output of stage {recorded.stage!r} that {source} records "
            f"(md5 {actual[:12]}…, recorded {recorded.md5[:12]}…): it came from elsewhere "
            "(a tampered or stale remote, an old cache, a local edit); "
            "`dvc checkout` or `dvc repro` restores the recorded one"
        )
    return recorded


def model_pin(root: Path, model_dir: Path, commit: str | None = None) -> str:
    """The ONNX SHA-256 to pin: the card's, once ``model_dir`` is proven to be what
    `dvc.lock` records."""
    check_output(root, model_dir, commit)
    return ModelCard.read(model_dir / CARD_FILE).onnx_sha256
