"""The estimators `params.yaml` offers, side by side on the prepared split.

For each value of ``train.estimator`` (the choices come from the params model,
so a new estimator is measured without editing this file), with the rest of
``train:`` as it is in ``params.yaml``:

1. **CV ROC AUC**: `train.run`'s stratified k-fold on the training split, and
   **fit s**, the wall time of fitting the final pipeline once on all of it;
2. **held-out ROC AUC** of the fitted pipeline on the test split;
3. the **ONNX export** (`model.export_onnx`, what `train` writes): its size,
   and its largest |P(positive)| difference from the pipeline on *every* row
   of both splits (`train` refuses a model above `model.ONNX_TOLERANCE`);
4. **latency**: one-row `OnnxModel.predict` (what the service calls per
   request), median of repeated calls, in this process on one thread.

Run `make demo` first (it writes ``data/prepared/``)::

    python bench/estimators.py
    python bench/estimators.py --train data/prepared/train.csv --test data/prepared/test.csv
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit
from pathlib import Path
from typing import get_args

import numpy as np

from churn.core.data import features, label, load
from churn.core.domain import load_domain
from churn.core.params import TrainParams, load_params
from churn.pipeline import train
from churn.pipeline.model import build_pipeline, export_onnx
from churn.serving.onnx_model import OnnxModel


def measure(
    estimator: str, train_path: Path, test_path: Path, repeats: int
) -> dict[str, float | str]:
    from sklearn.metrics import roc_auc_score

    domain = load_domain()
    contract = domain.contract
    params = load_params().train.model_copy(update={"estimator": estimator})
    frame, test = load([train_path], domain), load([test_path], domain)
    cv = train.cross_validate(frame, params, contract)
    started = time.perf_counter()
    pipeline = build_pipeline(params, contract).fit(
        features(frame, contract), label(frame, contract)
    )
    fit_s = time.perf_counter() - started
    x_test = features(test, contract)
    held_out = float(roc_auc_score(label(test, contract), pipeline.predict_proba(x_test)[:, 1]))
    onnx = export_onnx(pipeline, contract)
    model = OnnxModel(onnx, contract)
    difference = 0.0
    for split in (frame, test):
        x = features(split, contract)
        exported = model.predict_columns({name: x[name].to_numpy() for name in x.columns})
        difference = max(
            difference, float(np.max(np.abs(exported - pipeline.predict_proba(x)[:, 1])))
        )
    row = x_test.head(1)
    numeric = row[list(contract.numeric_names)].to_numpy(dtype=np.float32)
    categorical = row[list(contract.categorical_names)].to_numpy(dtype=object)
    timer = timeit.Timer(lambda: model.predict(numeric, categorical))
    per_call = [t / 200 for t in timer.repeat(repeat=repeats, number=200)]
    return {
        "estimator": estimator,
        "cv_roc_auc": cv["cv_roc_auc"],
        "cv_roc_auc_std": cv["cv_roc_auc_std"],
        "held_out_roc_auc": held_out,
        "fit_s": fit_s,
        "onnx_kib": len(onnx) / 1024,
        "max_abs_diff": difference,
        "rows_checked": len(frame) + len(test),
        "latency_us": statistics.median(per_call) * 1e6,
    }


def render(rows: list[dict[str, float | str]]) -> str:
    lines = [
        "| estimator | CV ROC AUC (± std) | held-out ROC AUC | fit s | ONNX KiB "
        "| max \\|ΔP\\| ONNX (rows) | one-row ONNX µs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['estimator']} | {r['cv_roc_auc']:.4f} (± {r['cv_roc_auc_std']:.4f}) "
            f"| {r['held_out_roc_auc']:.4f} | {r['fit_s']:.2f} | {r['onnx_kib']:.0f} "
            f"| {r['max_abs_diff']:.1e} ({r['rows_checked']}) | {r['latency_us']:.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--train", type=Path, default=Path("data/prepared/train.csv"))
    parser.add_argument("--test", type=Path, default=Path("data/prepared/test.csv"))
    parser.add_argument("--repeats", type=int, default=7, help="latency repeats of 200 calls")
    args = parser.parse_args()
    choices = get_args(TrainParams.model_fields["estimator"].annotation)
    print(render([measure(e, args.train, args.test, args.repeats) for e in choices]))


if __name__ == "__main__":
    main()
