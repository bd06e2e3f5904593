"""Stage `train`: fit the pipeline, save it safely, log and register it.

Training refuses to start unless the validation report of the same data says
it passed, so a model is never fitted on data that broke the contract, even
when this stage is run by hand outside `dvc repro`.

Crash-safe: the model is written to a staging folder beside ``model_dir``
and swapped in only when it is whole (`staged_directory`), and it is logged
and registered in MLflow only after that, so a refused, failed or killed
training leaves the previous model in place and no registry version that
`dvc.lock` would never record (dvc.yaml keeps the old `models/` with
``persist: true``).
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from churn.core.artifacts import (
    CARD_FILE,
    DRIFT_PROFILE_FILE,
    ONNX_FILE,
    ModelCard,
    file_sha256,
)
from churn.core.contract import MISSING_LEVEL, Contract
from churn.core.data import features, label, load
from churn.core.domain import Domain
from churn.core.errors import ValidationFailedError
from churn.core.jsonio import read_json_object
from churn.core.params import DriftParams, TrainParams
from churn.monitoring.drift import model_profile
from churn.pipeline.model import (
    build_pipeline,
    export_onnx,
    library_versions,
    onnx_difference,
    save_model,
)

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from churn.registry.tracking import TrackingSettings

log = logging.getLogger(__name__)
EXAMPLE_ROWS = 3
# At least this many training rows (and enough to show every categorical
# level) are stored in the card with their scores, for later self-checks.
REFERENCE_ROWS = 5


def cross_validate(
    frame: pd.DataFrame, params: TrainParams, contract: Contract
) -> dict[str, float]:
    """Stratified k-fold ROC AUC of a fresh pipeline on ``frame``."""
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = StratifiedKFold(n_splits=params.cv_folds, shuffle=True, random_state=params.seed)
    scores = cross_val_score(
        build_pipeline(params, contract),
        features(frame, contract),
        label(frame, contract),
        cv=folds,
        scoring="roc_auc",
    )
    return {
        "cv_roc_auc": round(float(scores.mean()), 6),
        "cv_roc_auc_std": round(float(scores.std()), 6),
    }


def run(
    frame: pd.DataFrame, params: TrainParams, contract: Contract
) -> tuple[Pipeline, dict[str, float]]:
    """Cross-validate, then fit on all of ``frame``; returns (pipeline, CV metrics)."""
    metrics = cross_validate(frame, params, contract)
    x, y = features(frame, contract), label(frame, contract)
    pipeline = build_pipeline(params, contract).fit(x, y)
    return pipeline, metrics


def require_passed(report_path: Path, data_path: Path) -> None:
    """The report must say the data passed, and be about this very file (by hash)."""
    report = read_json_object(report_path, ValidationFailedError, hint="no validation report")
    if report.get("success") is not True:
        raise ValidationFailedError(f"{report_path}: the data failed validation; not training")
    if file_sha256(data_path) not in report.get("sha256", {}).values():
        raise ValidationFailedError(
            f"{report_path} does not cover {data_path} as it is now: validate it first"
        )


def reference_rows(x: pd.DataFrame, contract: Contract) -> list[int]:
    """Positions of a few rows that together show every level of every categorical.

    The service scores them at start-up against the pipeline's scores, so a
    model whose inputs were wired differently (a swapped column) cannot pass.
    """
    chosen: list[int] = []
    names = list(contract.categorical_names)
    missing: set[tuple[str, str | None]] = {
        (c.name, level)
        for c in contract.categorical
        for level in (*c.levels, *([MISSING_LEVEL] if c.nullable else []))
    }
    # A blank in each nullable number too (None stands for NaN), so the imputer is checked.
    blanks = [c.name for c in contract.numeric if c.nullable]
    missing |= {(name, None) for name in blanks}
    for position, row in enumerate(x[names + blanks].itertuples(index=False)):
        levels, numbers = row[: len(names)], row[len(names) :]
        covers = set(zip(names, levels, strict=True))
        covers |= {
            (name, None) for name, value in zip(blanks, numbers, strict=True) if math.isnan(value)
        }
        if covers & missing:
            chosen.append(position)
            missing -= covers
        if not missing and len(chosen) >= REFERENCE_ROWS:
            break
    return chosen


def _json_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready records: a missing number is null (JSON has no NaN)."""
    if frame.isna().to_numpy().any():
        frame = frame.astype(object).where(frame.notna(), None)
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


@contextmanager
def staged_directory(target: Path) -> Iterator[Path]:
    """A fresh folder beside ``target`` to write into; it replaces ``target`` only
    when the block completes. On any error, ``target`` is left as it was.

    A process killed outright (SIGKILL, power loss) runs no clean-up: the next
    call removes its staging folder, and puts the previous folder back if the
    kill fell between the swap's two renames.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    previous = target.with_name(f".{target.name}.old")
    for leftover in target.parent.glob(f".{target.name}.new-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if previous.is_dir() and not target.exists():
        previous.rename(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
    try:
        yield staging
        staging.chmod(0o755)  # mkdtemp's 0700 is not what a model folder needs
        shutil.rmtree(previous, ignore_errors=True)
        if target.exists():
            target.rename(previous)
        staging.rename(target)  # the swap: same folder, so one rename
        shutil.rmtree(previous, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def power_of_ten_above(value: float) -> float:
    """The smallest power of ten at or above ``value`` (0 stays 0).

    The card records the ONNX export's difference from the pipeline as this
    bound: onnxruntime's float32 kernels differ by CPU (AVX2, AVX-512) in
    the last bits, and the card must be the same bytes on every machine.
    """
    return 0.0 if value <= 0 else float(10 ** math.ceil(math.log10(value)))


def write_model(
    pipeline: Pipeline,
    frame: pd.DataFrame,
    model_dir: Path,
    *,
    params: TrainParams,
    drift: DriftParams,
    metrics: dict[str, float],
    data: dict[str, Any],
    contract: Contract,
) -> ModelCard:
    """Save the fitted pipeline, its ONNX export (checked equal on ``frame``) and its card.

    Also the drift profile of ``frame`` with the ``drift`` rule, which the
    service compares its recent requests with (docs/monitoring.md).
    """
    x = features(frame, contract)
    onnx = export_onnx(pipeline, contract)
    difference = onnx_difference(pipeline, onnx, x, contract)
    sha256 = save_model(pipeline, model_dir)
    (model_dir / ONNX_FILE).write_bytes(onnx)
    profile = model_profile(frame, drift, contract=contract)
    (model_dir / DRIFT_PROFILE_FILE).write_text(profile.model_dump_json(indent=2) + "\n")
    reference = x.iloc[reference_rows(x, contract)]
    card = ModelCard(
        sha256=sha256,
        onnx_sha256=file_sha256(model_dir / ONNX_FILE),
        onnx_max_abs_diff=power_of_ten_above(difference),
        estimator=params.estimator,
        threshold=params.threshold,
        params=params.model_dump(),
        features=list(contract.feature_names),
        data=data,
        metrics=metrics,
        reference={
            "rows": _json_rows(reference),
            "scores": pipeline.predict_proba(reference)[:, 1].tolist(),
        },
        libraries=library_versions(),
        drift_profile_sha256=file_sha256(model_dir / DRIFT_PROFILE_FILE),
    )
    card.write(model_dir / CARD_FILE)
    return card


def main(
    train_path: Path,
    report_path: Path,
    model_dir: Path,
    *,
    params: TrainParams,
    drift: DriftParams,
    settings: TrackingSettings,
    domain: Domain,
    run_record: Path,
    dvc_lock: Path | None = None,
) -> ModelCard:
    """Train, save and register; ``dvc_lock`` is hashed into the run's lineage tags.

    The run record (run id, registered version) goes to ``run_record``, outside
    ``model_dir``: the model directory holds only what the same inputs
    reproduce byte for byte.
    """
    from churn.registry import tracking

    require_passed(report_path, train_path)
    contract = domain.contract
    frame = load([train_path], domain)
    # Fail on an unreachable tracking server before fitting (or fall back, if allowed).
    uri = tracking.start(settings)
    lineage = tracking.lineage(dvc_lock, train_path)  # the code and data as training starts
    pipeline, metrics = run(frame, params, contract)
    with staged_directory(model_dir) as staging:
        card = write_model(
            pipeline,
            frame,
            staging,
            params=params,
            drift=drift,
            metrics=metrics,
            data={"train_sha256": file_sha256(train_path), "train_rows": len(frame)},
            contract=contract,
        )
    record = tracking.log_training(
        pipeline,
        example=features(frame, contract).head(EXAMPLE_ROWS),
        contract=contract,
        card=card,
        model_dir=model_dir,
        settings=settings,
        uri=uri,
        tags=lineage,
    )
    run_record.parent.mkdir(parents=True, exist_ok=True)
    record.write(run_record)
    log.info("model %s… CV ROC AUC %.4f", card.sha256[:12], metrics["cv_roc_auc"])
    return card
