"""What the prediction log costs: `churn serve` with the log off and on, same model, same load.

Two `churn serve` processes on the pipeline's ``models/``, one without
``CHURN_PREDICTION_LOG_DIR`` and one writing to a temporary directory (with
the default flush interval, batch and buffer; ``--gzip`` compresses). As in
``serving.py``, each server is pinned to core 0 and ``wrk`` to core 1; the
two servers alternate point by point, and the order flips every repeat, so
a slow phase of a shared machine hits both.

Per point it records requests/s, p50 and p99 from wrk and the server's CPU
time per request (user + system, all threads: the log's background thread
included). After each repeat the logging server is stopped (SIGTERM) and
every prediction it answered must be on disk or counted as dropped, or the
benchmark fails. Last, `in_process` times the log's steps per record.

    python bench/prediction_log.py                     # 5 repeats x {1, 32} connections x 15 s
    python bench/prediction_log.py --duration 5 --repeats 1   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import urllib.request
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving import (
    HOST,
    LUA,
    MODELS,
    REPO,
    BenchError,
    Point,
    Target,
    churn_serve,
    loadavg,
    machine,
    measure,
    running,
    service_body,
    service_probability,
    wrk,
    wrk_command,
)

from churn.core.domain import load_domain
from churn.monitoring.predlog import PREDICTIONS, read_lines

if TYPE_CHECKING:
    from churn.core.contract import Contract

OFF, ON = "log-off", "log-on"


def targets(
    venv_bin: Path, log_dir: Path, body: str, *, compress: bool, extra: list[str]
) -> list[Target]:
    on_env = [f"CHURN_PREDICTION_LOG_DIR={log_dir}"]
    if compress:
        on_env.append("CHURN_PREDICTION_LOG_GZIP=true")
    on_env += extra
    return [
        Target(
            OFF,
            "/predict",
            body,
            churn_serve(venv_bin, ["-u", "CHURN_PREDICTION_LOG_DIR"]),
            service_probability,
        ),
        Target(ON, "/predict", body, churn_serve(venv_bin, on_env), service_probability),
    ]


def log_counters(port: int) -> dict[str, float]:
    """records written and dropped so far, from the server's /metrics."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out = {"written": 0.0, "dropped": 0.0}
    for line in text.splitlines():
        stream = f'stream="{PREDICTIONS}"'
        if line.startswith("churn_prediction_log_records_total{") and stream in line:
            out["written"] += float(line.rsplit(" ", 1)[1])
        elif line.startswith("churn_prediction_log_dropped_total{") and stream in line:
            out["dropped"] += float(line.rsplit(" ", 1)[1])
    return out


def lines_on_disk(log_dir: Path) -> int:
    return sum(len(read_lines(path).lines) for path in log_dir.glob(f"{PREDICTIONS}-*"))


def cpu_us_per_request(point: Point) -> float:
    return point.server_cpu_share * point.seconds / max(point.requests, 1) * 1e6


def summarise(points: list[dict[str, Any]], connections: list[int]) -> list[dict[str, Any]]:
    rows = []
    for count in connections:
        row: dict[str, Any] = {"connections": count}
        for name in (OFF, ON):
            mine = [p for p in points if p["server"] == name and p["connections"] == count]
            row[name] = {
                "requests_per_s": [p["requests_per_s"] for p in mine],
                "p99_ms": [p["p99_ms"] for p in mine],
                "p50_ms": [p["p50_ms"] for p in mine],
                "cpu_us_per_request": [p["cpu_us_per_request"] for p in mine],
                "errors": sum(p["non_2xx"] + p["socket_errors"] for p in mine),
            }
        off, on = row[OFF], row[ON]
        row["throughput_change_pct_median"] = round(
            100
            * (
                statistics.median(on["requests_per_s"]) / statistics.median(off["requests_per_s"])
                - 1
            ),
            1,
        )
        row["cpu_per_request_change_pct_median"] = round(
            100
            * (
                statistics.median(on["cpu_us_per_request"])
                / statistics.median(off["cpu_us_per_request"])
                - 1
            ),
            1,
        )
        rows.append(row)
    return rows


def _range(values: list[float], digits: int) -> str:
    low, high = min(values), max(values)
    middle = statistics.median(values)
    return f"{middle:,.{digits}f} ({low:,.{digits}f}-{high:,.{digits}f})"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| connections | log | requests/s | p50 ms | p99 ms | CPU µs/request | errors |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for name in (OFF, ON):
            r = row[name]
            lines.append(
                f"| {row['connections']} | {name.removeprefix('log-')} "
                f"| {_range(r['requests_per_s'], 0)} | {_range(r['p50_ms'], 2)} "
                f"| {_range(r['p99_ms'], 2)} | {_range(r['cpu_us_per_request'], 0)} "
                f"| {r['errors']} |"
            )
    return "\n".join(lines)


def in_process(cpu: int, contract: Contract) -> dict[str, float]:
    """CPU microseconds per record of each step, in this process pinned to ``cpu``.

    Stable where the load test is noisy: the request path's share (encoding
    one record's line and appending it to the buffer) and the background
    thread's (writing and fsyncing a batch of 1,000 lines, plain and gzip).
    """
    import time

    from churn.serving import loader, schemas
    from churn.serving.middleware import ServiceMetrics
    from churn.serving.prediction_log import encode_predictions
    from churn.serving.recorder import Recorder, RecorderMetrics
    from churn.serving.settings import ServingSettings
    from churn.serving.sinks import FileSink

    os.sched_setaffinity(0, {cpu})
    model = loader.load(ServingSettings(model_dir=MODELS), contract)
    api = schemas.build(contract)
    record = api.Record.model_validate_json(service_body(contract))
    request_id = "0123456789abcdef0123456789abcdef"  # a uuid4().hex, as the service makes
    records = 1000
    metrics = ServiceMetrics()
    counters = RecorderMetrics(
        metrics.log_records.labels("x"),
        metrics.log_dropped.labels("x", "buffer_full"),
        metrics.log_dropped.labels("x", "write_failed"),
        metrics.log_flush_errors.labels("x"),
    )
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="churn-bench-log-") as tmp:
        encode = append = float("inf")
        for _ in range(20):  # best of 20 rounds of 1,000
            # A fresh recorder, never started: only encoding and appending are timed.
            sink = FileSink(
                Path(tmp), PREDICTIONS, rotate_bytes=1 << 40, rotate_s=1e9, compress=False
            )
            recorder = Recorder(
                PREDICTIONS, sink, counters, capacity=records, batch=records, flush_s=1e9
            )
            start = time.process_time()
            lines = [
                encode_predictions(
                    time.time(), request_id, model, (record,), (0.5,), id_field=api.id_field
                )
                for _ in range(records)
            ]
            middle = time.process_time()
            for line in lines:
                recorder.add(line)
            encode = min(encode, middle - start)
            append = min(append, time.process_time() - middle)
        out["encode_us"] = encode / records * 1e6
        out["append_us"] = append / records * 1e6
        data = b"".join(lines)
        out["bytes_per_record"] = len(data) / records
        for compress in (False, True):
            sink = FileSink(
                Path(tmp), PREDICTIONS, rotate_bytes=1 << 40, rotate_s=1e9, compress=compress
            )
            write = float("inf")
            for _ in range(20):
                start = time.process_time()
                sink.write(data)
                write = min(write, time.process_time() - start)
            sink.close()
            out["gzip_write_fsync_us" if compress else "write_fsync_us"] = write / records * 1e6
    return {name: round(value, 2) for name, value in out.items()}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Load `churn serve` with the prediction log off and on (wrk, pinned cores)."
    )
    parser.add_argument("--duration", type=int, default=15, help="seconds per load point")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--gzip", action="store_true", help="compress the log (.jsonl.gz)")
    parser.add_argument(
        "--log-env",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help="more settings for the logging server, e.g. CHURN_PREDICTION_LOG_BATCH=100",
    )
    parser.add_argument(
        "--skip-in-process", action="store_true", help="do not time the steps in this process"
    )
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "prediction_log.json"
    )
    return parser.parse_args()


def run(args: argparse.Namespace, contract: Contract) -> dict[str, Any]:
    if {args.server_cpu, args.client_cpu} - os.sched_getaffinity(0):
        raise BenchError(f"cores {args.server_cpu} and {args.client_cpu} must both be available")
    wrk_command()
    venv_bin = Path(sys.executable).parent
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    load_before = loadavg()
    points: list[dict[str, Any]] = []
    accounting: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="churn-bench-log-") as tmp:
        work = Path(tmp)
        script = work / "predict.lua"
        body = service_body(contract)
        script.write_text(LUA.format(body=body))
        for repeat in range(1, args.repeats + 1):
            log_dir = work / f"log-{repeat}"
            pair = targets(venv_bin, log_dir, body, compress=args.gzip, extra=args.log_env)
            order = pair if repeat % 2 else pair[::-1]
            print(
                f"repeat {repeat}/{args.repeats}: {', '.join(t.name for t in order)}",
                file=sys.stderr,
            )
            answered = 0
            with running(order, args.server_cpu, env=env, logs=work) as servers:
                for server in servers:
                    warm = wrk(
                        server.url, script, max(args.connections), args.warmup, args.client_cpu
                    )
                    if server.target.name == ON:
                        answered += int(warm["requests"])
                for connections in args.connections:
                    for server in servers:
                        point = measure(server, script, connections, repeat, args)
                        if server.target.name == ON:
                            answered += point.requests
                        points.append(
                            asdict(point)
                            | {"cpu_us_per_request": round(cpu_us_per_request(point), 1)}
                        )
                logger = next(s for s in servers if s.target.name == ON)
                counters = log_counters(logger.port)
            # Stopped with SIGTERM: the lifespan wrote what was buffered. Every
            # answered prediction (plus the start-up probe) is on disk or dropped.
            accounting.append(
                {
                    "repeat": repeat,
                    "answered_by_the_logging_server": answered,
                    "written_before_stop": counters["written"],
                    "dropped": counters["dropped"],
                    "lines_on_disk_after_stop": lines_on_disk(log_dir),
                    "bytes_on_disk": sum(f.stat().st_size for f in log_dir.iterdir()),
                }
            )
            print(f"  log: {accounting[-1]}", file=sys.stderr, flush=True)
            entry = accounting[-1]
            if entry["lines_on_disk_after_stop"] + entry["dropped"] < answered:
                raise BenchError(f"answered predictions missing from the log: {entry}")
    rows = summarise(points, args.connections)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine() | {"loadavg_before": load_before, "loadavg_after": loadavg()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "points": points,
        "log": accounting,
        "summary": rows,
        "table": markdown(rows),
    }


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    contract = load_domain().contract
    try:
        report = run(args, contract)
        if not args.skip_in_process:
            report["in_process_cpu_per_record"] = in_process(args.server_cpu, contract)
    except BenchError as exc:
        sys.exit(f"error: {exc}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(report["table"])
    print()
    for row in report["summary"]:
        throughput = row["throughput_change_pct_median"]
        cpu = row["cpu_per_request_change_pct_median"]
        print(
            f"- {row['connections']} connection(s), with the log (medians): "
            f"throughput {throughput:+.1f}%, CPU per request {cpu:+.1f}%"
        )
    for entry in report["log"]:
        print(
            f"- repeat {entry['repeat']}: {entry['lines_on_disk_after_stop']:,.0f} lines on disk, "
            f"{entry['dropped']:,.0f} dropped, {entry['bytes_on_disk'] / 2**20:,.1f} MiB"
        )
    for name, value in report.get("in_process_cpu_per_record", {}).items():
        print(f"- in process, per record: {name} {value}")
    print(f"\nMedian (min-max) of {args.repeats} repeat(s). Written to {args.out}")


if __name__ == "__main__":
    main()
