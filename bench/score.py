"""Batch scoring speed and memory: `churn score` on synthetic records, and the ONNX floor.

For each size, records of the domain's contract are generated
(`churn.pipeline.synth.generate`, in pieces of ``PIECE_ROWS`` so the
generator's memory does not grow with the size) into a Parquet file, then:

- **local**: ``churn score --input FILE --output ...`` as a subprocess;
- **spark**: the same with ``--engine spark --master local[CORES]``;
- **floor**: in this process, ``OnnxModel.predict`` (one ``session.run``) on
  arrays prepared beforehand, chunk by chunk as the command feeds it: the
  model's own cost, with no reading, checking or writing.

Per run: wall seconds, rows per second, and peak RSS from ``os.wait4``
(``ru_maxrss``: the largest of the process and the children it waited for;
for Spark that is the JVM or a Python worker, whichever peaked higher, not
their sum). Linux keeps a child's ``ru_maxrss`` across ``exec`` from the
moment it was forked, so this script stays small: it imports nothing heavy
and generates the input and measures the floor in child processes of their
own. Results go to ``--out`` as JSON and a Markdown table (bench/README.md).

    python bench/score.py --rows 100000 1000000 --out bench/results
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PIECE_ROWS = 250_000


@dataclass(frozen=True)
class Run:
    rows: int
    engine: str
    seconds: float
    rows_per_s: float
    peak_rss_mib: float | None  # None: measured in this process (the floor)


def write_input(path: Path, rows: int) -> None:
    """``rows`` synthetic records in a Parquet file, written piece by piece."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from churn.core.domain import load_domain
    from churn.pipeline.synth import generate
    from churn.scoring.storage import CHUNK_ROWS

    contract = load_domain().contract
    writer: pq.ParquetWriter | None = None
    try:
        for number, start in enumerate(range(0, rows, PIECE_ROWS)):
            frame = generate(contract, min(PIECE_ROWS, rows - start), seed=number)
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            writer.write_table(table, row_group_size=CHUNK_ROWS)
    finally:
        if writer is not None:
            writer.close()


def churn_command() -> str:
    return str(Path(sys.executable).parent / "churn")


def run_score(rows: int, source: Path, out: Path, engine: str, model_dir: Path) -> Run:
    command = [churn_command(), "score", "--input", str(source), "--output", str(out)]
    command += ["--model-dir", str(model_dir), "--overwrite"]
    if engine != "local":
        command += ["--engine", "spark", "--master", engine.removeprefix("spark ")]
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise RuntimeError(f"{' '.join(command)} failed:\n{stderr[-2000:]}")
    return Run(rows, engine, round(seconds, 2), round(rows / seconds), usage.ru_maxrss / 1024)


def onnx_floor(rows: int, source: Path, model_dir: Path) -> Run:
    """Rows/s of the model alone: ``session.run`` on arrays prepared beforehand."""
    import numpy as np
    import pyarrow.parquet as pq

    from churn.core.domain import load_domain
    from churn.scoring.storage import CHUNK_ROWS
    from churn.serving import loader
    from churn.serving.settings import ServingSettings

    domain = load_domain()
    model = loader.load(ServingSettings(model_dir=model_dir), domain.contract).model
    seconds = 0.0
    parquet = pq.ParquetFile(source)
    columns = [*model.numeric, *model.categorical]
    for batch in parquet.iter_batches(batch_size=CHUNK_ROWS, columns=columns):
        numeric = np.column_stack(
            [batch.column(name).to_numpy().astype(np.float32) for name in model.numeric]
        )
        categorical = np.column_stack(
            [np.asarray(batch.column(name).to_pylist(), dtype=object) for name in model.categorical]
        )
        start = time.perf_counter()
        model.predict(numeric, categorical)
        seconds += time.perf_counter() - start
    return Run(rows, "onnx floor", round(seconds, 2), round(rows / seconds), None)


def markdown(runs: list[Run]) -> str:
    lines = ["| rows | engine | seconds | rows/s | peak RSS MiB |", "|---:|---|---:|---:|---:|"]
    for run in runs:
        rss = "—" if run.peak_rss_mib is None else f"{run.peak_rss_mib:,.0f}"
        lines.append(
            f"| {run.rows:,} | {run.engine} | {run.seconds:,.1f} | {run.rows_per_s:,} | {rss} |"
        )
    return "\n".join(lines) + "\n"


def in_child(*args: str) -> str:
    """This script with ``args`` in a process of its own; its stdout."""
    done = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"{args[0]} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def main() -> None:
    if sys.argv[1:2] == ["--write-input"]:  # child: generate the input
        write_input(Path(sys.argv[2]), int(sys.argv[3]))
        return
    if sys.argv[1:2] == ["--floor"]:  # child: the ONNX floor, as JSON
        run = onnx_floor(int(sys.argv[3]), Path(sys.argv[2]), Path(sys.argv[4]))
        print(json.dumps(asdict(run)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--no-spark", action="store_true", help="skip the Spark runs")
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        for rows in args.rows:
            source = Path(tmp) / f"records-{rows}.parquet"
            in_child("--write-input", str(source), str(rows))
            engines = ["local"] + ([] if args.no_spark else [f"spark {args.spark_master}"])
            floor = in_child("--floor", str(source), str(rows), str(args.model_dir))
            runs.append(Run(**json.loads(floor)))
            for engine in engines:
                out = Path(tmp) / f"scores-{rows}-{engine.split()[0]}.parquet"
                runs.append(run_score(rows, source, out, engine, args.model_dir))
                print(markdown(runs[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
            source.unlink()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "score.json").write_text(json.dumps([asdict(r) for r in runs], indent=2) + "\n")
    (args.out / "score.md").write_text(markdown(runs))
    print(markdown(runs))


if __name__ == "__main__":
    main()
