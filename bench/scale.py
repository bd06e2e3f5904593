"""How the pipeline scales with data size: wall time and peak memory per stage.

For each size, in a fresh temporary directory, this writes a raw CSV of
synthetic records of the domain's contract (`synth.write`, which calls
`churn.pipeline.synth.generate`), copies the repository's ``params.yaml`` and
runs the four stages as subprocesses with the same commands as ``dvc.yaml``,
only with paths inside that directory. Running the real ``churn`` command, not
the Python functions, measures what ``dvc repro`` pays: interpreter start,
imports and file I/O included.

Peak memory is the stage process's own maximum resident set size, read from
``os.wait4`` when the child exits: exact, with no sampling thread, and
unaffected by the memory this script holds.

    python bench/scale.py --rows 100000 1000000 --out bench/results
    python bench/scale.py --include-real --rows 100000   # growth from the real data
    python bench/scale.py --domain tests/domains/synthetic --rows 20000
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from synth import write

from churn.core.domain import DOMAIN_ENV

REPO = Path(__file__).resolve().parent.parent
RAW_DIR = REPO / "data" / "raw"
SEED = 0
STDERR_TAIL_LINES = 30
MIB = 1024 * 1024

# dvc.yaml's commands with every path inside the working directory.
STAGES: dict[str, list[str]] = {
    "prepare": ["prepare", "--raw", "raw", "--out-dir", "prepared", "--params", "params.yaml"],
    "validate": [
        "validate",
        "prepared/train.csv",
        "prepared/test.csv",
        "--report",
        "reports/validation.json",
    ],
    "train": [
        "train",
        "--train",
        "prepared/train.csv",
        "--validation-report",
        "reports/validation.json",
        "--model-dir",
        "models",
        "--params",
        "params.yaml",
    ],
    "evaluate": [
        "evaluate",
        "--test",
        "prepared/test.csv",
        "--model-dir",
        "models",
        "--metrics",
        "metrics.json",
        "--plots-dir",
        "plots",
        "--params",
        "params.yaml",
    ],
}


@dataclass(frozen=True)
class StageResult:
    stage: str
    seconds: float
    peak_rss_mib: float | None  # None for work done in this process (synthesis)


@dataclass
class SizeResult:
    rows: int
    source: str  # "real" or "synthetic"
    csv_mib: float = 0.0
    stages: list[StageResult] = field(default_factory=list)
    roc_auc: float | None = None


class StageFailedError(Exception):
    """A stage exited non-zero; the message carries the tail of its stderr."""


def churn_command() -> str:
    """The ``churn`` console script of the interpreter running this file."""
    beside = Path(sys.executable).with_name("churn")
    found = str(beside) if beside.is_file() else shutil.which("churn")
    if found is None:
        sys.exit("error: the `churn` command is not installed (run `make install`)")
    return found


def run_stage(name: str, workdir: Path, env: dict[str, str]) -> StageResult:
    """Run one stage to completion; time it and read its peak RSS from `os.wait4`.

    Output goes to files, not pipes: a stage that fills a pipe nobody reads
    while we sit in `wait4` would block forever.
    """
    err_path = workdir / f"{name}.stderr"
    with (workdir / f"{name}.stdout").open("wb") as out, err_path.open("wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [churn_command(), *STAGES[name]], cwd=workdir, env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # we reaped it, not Popen
    if proc.returncode != 0:
        tail = err_path.read_text(errors="replace").splitlines()[-STDERR_TAIL_LINES:]
        raise StageFailedError(
            f"stage {name!r} exited {proc.returncode}; its stderr ends:\n" + "\n".join(tail)
        )
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    kib = usage.ru_maxrss / 1024 if sys.platform == "darwin" else usage.ru_maxrss
    return StageResult(name, round(seconds, 2), round(kib / 1024, 1))


def real_files() -> list[Path]:
    """The repository's raw data: every CSV in data/raw (what `prepare` reads)."""
    files = sorted(RAW_DIR.glob("*.csv"))
    if not files:
        sys.exit(f"error: no CSV file in {RAW_DIR}")
    return files


def run_size(rows: int | None, domain: str | None) -> SizeResult:
    """The whole pipeline on ``rows`` synthetic records, or on the real data if None."""
    with tempfile.TemporaryDirectory(prefix="churn-bench-") as tmp:
        workdir = Path(tmp)
        raw = workdir / "raw"
        raw.mkdir()
        if rows is None:
            result = SizeResult(rows=0, source="real")
            for path in real_files():
                shutil.copyfile(path, raw / path.name)
                with path.open() as lines:
                    result.rows += sum(1 for _ in lines) - 1
        else:
            seconds = write(raw / "synthetic.csv", rows, SEED, domain)
            result = SizeResult(rows=rows, source="synthetic")
            result.stages.append(StageResult("synthesize", round(seconds, 2), peak_rss_mib=None))
        result.csv_mib = round(sum(p.stat().st_size for p in raw.glob("*.csv")) / MIB, 1)
        shutil.copyfile(REPO / "params.yaml", workdir / "params.yaml")
        # Keep MLflow runs out of the repository and GX off the network.
        env = os.environ | {
            "MLFLOW_TRACKING_URI": f"sqlite:///{workdir}/mlflow.db",
            "GX_ANALYTICS_ENABLED": "false",
        }
        if domain is not None:  # the stages run in workdir: a folder must be absolute
            env[DOMAIN_ENV] = str(Path(domain).resolve()) if Path(domain).is_dir() else domain
        for name in STAGES:
            print(f"{result.rows:>9,} rows: {name}", file=sys.stderr, flush=True)
            result.stages.append(run_stage(name, workdir, env))
        result.roc_auc = json.loads((workdir / "metrics.json").read_text())["roc_auc"]
    return result


def markdown(results: list[SizeResult]) -> str:
    lines = ["| rows | stage | seconds | peak RSS MiB |", "|---:|---|---:|---:|"]
    for size in results:
        for stage in size.stages:
            rss = "—" if stage.peak_rss_mib is None else f"{stage.peak_rss_mib:,.0f}"
            lines.append(f"| {size.rows:,} | {stage.stage} | {stage.seconds:,.1f} | {rss} |")
        pipeline = sum(s.seconds for s in size.stages if s.peak_rss_mib is not None)
        lines.append(f"| {size.rows:,} | **pipeline total** | **{pipeline:,.1f}** | |")
    lines.append("")
    for size in results:
        lines.append(
            f"- {size.rows:,} rows ({size.source}): CSV {size.csv_mib:,.1f} MiB, "
            f"test ROC AUC {size.roc_auc}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Time each pipeline stage and measure its peak memory at several data sizes."
    )
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[100_000, 1_000_000], help="synthetic sizes"
    )
    parser.add_argument(
        "--include-real", action="store_true", help="first run on the real data (data/raw)"
    )
    parser.add_argument(
        "--domain", help="a domain module or folder for data and stages (default: $CHURN_DOMAIN)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()

    sizes: list[int | None] = [None] if args.include_real else []
    sizes += args.rows
    results: list[SizeResult] = []
    try:
        for rows in sizes:
            results.append(run_size(rows, args.domain))
    except StageFailedError as exc:
        sys.exit(f"error: {exc}")

    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "results": [asdict(r) for r in results],
    }
    (args.out / "scale.json").write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(results))


if __name__ == "__main__":
    main()
