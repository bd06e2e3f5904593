"""Serving side by side: `mlflow models serve` against `churn serve`, same model, same load.

Both servers serve the model the pipeline logged: MLflow's own scoring
server loads the scikit-learn pipeline the ``train`` stage logged to MLflow
(``reports/run/mlflow_run.json``), ``churn serve`` loads its ONNX export from
``models/``. Each server is one process (one uvicorn worker) pinned to CPU
core 0 with ``taskset``; the load generator, ``wrk``, is pinned to core 1, so
the two never compete for a core and the numbers are "what one core serves".

For each repeat both servers are started fresh, on free ports on 127.0.0.1:

1. **cold start**: from process start to the first successful answer to a
   real prediction request (interpreter start, imports, model loading and
   self-checks included);
2. **agreement**: both must answer 200 with the same probability for the
   contract's example record (to 1e-5), or nothing is measured;
3. **load**: a short warm-up, then ``wrk --latency`` for ``--duration``
   seconds at each connection count, the two servers alternating point by
   point so that slow phases of a noisy machine hit both;
4. **memory**: the resident set of the server's whole process tree (MLflow's
   command starts uvicorn as a child) after the load, from ``/proc``.

Both servers are always stopped (process groups, SIGTERM then SIGKILL), and
the load is bounded in time. Afterwards, in this process and pinned to the
server's core, it times the pieces of one prediction: the ONNX model's
``predict`` and the raw onnxruntime ``run``, and the scikit-learn pipeline's
``predict_proba`` on a one-row DataFrame (what MLflow's server calls).

    python bench/serving.py                       # 2 repeats x {1, 8, 32} connections x 20 s
    python bench/serving.py --duration 5 --repeats 1 --connections 1 32   # a quick look
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn.core.domain import load_domain

if TYPE_CHECKING:
    from churn.core.contract import Contract

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
HOST = "127.0.0.1"
AGREEMENT_TOLERANCE = 1e-5
START_TIMEOUT_S = 180.0
POLL_INTERVAL_S = 0.02
STOP_TIMEOUT_S = 15.0
LOG_TAIL_LINES = 30
MIB = 1024 * 1024
WRK_INSTALL = "command -v wrk || (apt-get update && apt-get install -y wrk)"


class BenchError(Exception):
    """The benchmark cannot go on: a server did not start, answered wrongly, wrk failed."""


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Target:
    """One server: how to start it and what it is asked."""

    name: str
    path: str  # the prediction route
    body: str  # JSON request body for the example record
    command: Callable[[int], list[str]]  # port -> argv (without taskset)
    probability: Callable[[Any], float]  # parsed response -> P(positive class)


def example_row(contract: Contract) -> dict[str, Any]:
    """The contract's example record's features, in contract column names and order;
    numbers as doubles, as the logged MLflow signature declares them."""
    numeric = set(contract.numeric_names)
    example = contract.example
    return {c: float(example[c]) if c in numeric else example[c] for c in contract.feature_names}


def mlflow_body(contract: Contract) -> str:
    """The example record as MLflow's ``dataframe_split`` input, in contract column names.

    The columns are the contract's features in the model's order, the same as
    the logged ``serving_input_example.json`` (`check_example_columns`).
    """
    row = example_row(contract)
    return json.dumps({"dataframe_split": {"columns": list(row), "data": [list(row.values())]}})


def service_body(contract: Contract) -> str:
    """The example record as `churn serve`'s ``/predict`` body."""
    return json.dumps(contract.api_example())


def check_example_columns(model_uri: str, contract: Contract) -> list[str]:
    """The columns of the logged ``serving_input_example.json``, checked against the contract."""
    import mlflow

    with tempfile.TemporaryDirectory(prefix="churn-bench-model-") as tmp:
        try:
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp))
        except Exception as exc:  # MLflow raises assorted errors for a missing model
            uri = os.environ["MLFLOW_TRACKING_URI"]
            raise BenchError(f"cannot resolve {model_uri} in {uri}: {exc}") from None
        example = local / "serving_input_example.json"
        if not example.is_file():
            raise BenchError(f"{model_uri}: no serving_input_example.json (logged without one?)")
        columns: list[str] = json.loads(example.read_text())["dataframe_split"]["columns"]
    if columns != list(contract.feature_names):
        raise BenchError(f"{model_uri}: example columns {columns} are not the contract's features")
    return columns


def mlflow_probability(answer: Any) -> float:
    # predict_proba through pyfunc: {"predictions": [[P(negative), P(positive)]]}
    return float(answer["predictions"][0][1])


def service_probability(answer: Any) -> float:
    return float(answer["probability"])


def post(url: str, body: str, timeout: float) -> tuple[int, Any]:
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    target: Target
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    cold_start_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.target.path}"

    def log_tail(self) -> str:
        lines = self.log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        return "\n".join(lines)


def start(target: Target, cpu: int, env: dict[str, str], logs: Path) -> Server:
    """Start ``target`` pinned to ``cpu``; return once it answered a real prediction."""
    port = free_port()
    log = logs / f"{target.name}-{port}.log"
    with log.open("wb") as out:
        begin = time.perf_counter()
        # Its own session: the process group holds the server and any worker it forks.
        process = subprocess.Popen(
            ["taskset", "-c", str(cpu), *target.command(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(target, port, process, log)
    try:
        server.cold_start_s = wait_for_answer(server) - begin
    except BaseException:  # including Ctrl-C: never leave a half-started server behind
        stop(server)
        raise
    return server


def wait_for_answer(server: Server) -> float:
    """Poll with a real prediction until one succeeds; the ``perf_counter`` of that answer."""
    deadline = time.perf_counter() + START_TIMEOUT_S
    while True:
        if server.process.poll() is not None:
            raise BenchError(
                f"{server.target.name} exited with {server.process.returncode} before "
                f"answering; its log ends:\n{server.log_tail()}"
            )
        try:
            status, _ = post(server.url, server.target.body, timeout=5)
            if status == 200:
                return time.perf_counter()
        # Not listening yet, connection reset, or half an answer.
        except (OSError, ValueError, http.client.HTTPException):
            pass
        if time.perf_counter() > deadline:
            raise BenchError(f"{server.target.name} did not answer within {START_TIMEOUT_S:.0f} s")
        time.sleep(POLL_INTERVAL_S)


def stop(server: Server) -> None:
    """SIGTERM the server's process group, SIGKILL what is left after a grace period."""
    pgid = server.process.pid  # start_new_session: the group id is the leader's pid
    for sig, grace in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and group_alive(pgid):
            server.process.poll()  # reap the leader so it does not linger as a zombie
            time.sleep(0.1)
        if not group_alive(pgid):
            break
    server.process.poll()


def group_alive(pgid: int) -> bool:
    """True while any non-zombie process is in process group ``pgid``."""
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat_fields(entry.name)
        if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
            return True
    return False


@contextmanager
def running(
    targets: list[Target], cpu: int, env: dict[str, str], logs: Path
) -> Iterator[list[Server]]:
    """Start the servers one after another (each cold start on an idle core); always stop them."""
    servers: list[Server] = []
    try:
        for target in targets:
            print(f"  starting {target.name} …", file=sys.stderr, flush=True)
            servers.append(start(target, cpu, env, logs))
            print(
                f"  {target.name}: answered after {servers[-1].cold_start_s:.2f} s",
                file=sys.stderr,
                flush=True,
            )
        yield servers
    finally:
        for server in servers:
            stop(server)


def _stat_fields(pid: int | str) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name (state is [0], ppid [1])."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        if (fields := _stat_fields(entry.name)) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def tree_rss(pid: int) -> dict[int, int]:
    """Resident bytes (VmRSS) of ``pid`` and each of its descendants."""
    rss: dict[int, int] = {}
    for member in tree(pid):
        try:
            status = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        rss[member] = int(match.group(1)) * 1024 if match else 0
    return rss


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants."""
    ticks = 0
    for member in tree(pid):
        if (fields := _stat_fields(member)) is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- load


LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]
"""
UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


@dataclass(frozen=True)
class Point:
    server: str
    connections: int
    repeat: int
    requests: int
    seconds: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    rss_mib: float
    server_cpu_share: float

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


def wrk_command() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise BenchError(f"wrk is not installed; `make bench-serving` installs it ({WRK_INSTALL})")
    return found


def wrk(url: str, script: Path, connections: int, seconds: int, cpu: int) -> dict[str, float]:
    """One ``wrk --latency`` run (one thread, closed loop) pinned to ``cpu``; parsed."""
    argv = [
        "taskset",
        "-c",
        str(cpu),
        wrk_command(),
        "--latency",
        "-t",
        "1",
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode}: {done.stderr.strip()}")
    return parse_wrk(done.stdout)


def parse_wrk(text: str) -> dict[str, float]:
    """Requests, requests/s, p50/p99 (ms) and error counts from ``wrk --latency`` output.

    wrk reports responses with a status above 399 as "Non-2xx or 3xx"; the
    servers never redirect, so that is the count of failed answers.
    """

    def number(pattern: str) -> re.Match[str]:
        match = re.search(pattern, text, re.MULTILINE)
        if match is None:
            raise BenchError(f"unexpected wrk output (no {pattern!r}):\n{text}")
        return match

    def latency_ms(percent: int) -> float:
        match = number(rf"^\s+{percent}%\s+([\d.]+)(us|ms|s|m|h)\s*$")
        return float(match.group(1)) * UNITS_MS[match.group(2)]

    done = number(r"^\s+(\d+) requests in ([\d.]+)(us|ms|s|m|h),")
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "requests": int(done.group(1)),
        "seconds": float(done.group(2)) * UNITS_MS[done.group(3)] / 1e3,
        "requests_per_s": float(number(r"^Requests/sec:\s+([\d.]+)").group(1)),
        "p50_ms": latency_ms(50),
        "p99_ms": latency_ms(99),
        "non_2xx": int(non_2xx.group(1)) if non_2xx else 0,
        "socket_errors": sum(int(g) for g in sockets.groups()) if sockets else 0,
    }


# --------------------------------------------------------------------------- in process


def per_call_us(
    call: Callable[[], object], budget_s: float = 0.2, repeat: int = 15
) -> dict[str, float]:
    """Per-call microseconds of ``call``: best and median of ``repeat`` timed loops.

    Many short loops rather than a few long ones: on a shared machine the
    best loop is the one a neighbour did not interrupt.
    """
    call()  # first call outside the timing (lazy initialisation)
    timer = timeit.Timer(call)
    number, took = timer.autorange()
    number = max(1, int(number * budget_s / max(took, 1e-9)))
    loops = [t / number * 1e6 for t in timer.repeat(repeat=repeat, number=number)]
    return {"best_us": round(min(loops), 2), "median_us": round(statistics.median(loops), 2)}


def in_process(model_uri: str, cpu: int, contract: Contract) -> dict[str, dict[str, float]]:
    """Time the pieces of one prediction in this process, pinned to ``cpu``."""
    import numpy as np
    import pandas as pd
    from mlflow import pyfunc

    from churn.pipeline.model import load_model
    from churn.serving import schemas
    from churn.serving.onnx_model import CATEGORICAL_INPUT, NUMERIC_INPUT, OUTPUT, OnnxModel

    os.sched_setaffinity(0, {cpu})
    names = list(contract.feature_names)
    row = example_row(contract)
    one_row = {c: [v] for c, v in row.items()}

    numeric, categorical = contract.numeric_names, contract.categorical_names
    onnx = OnnxModel((MODELS / "model.onnx").read_bytes(), contract)
    feeds = {
        NUMERIC_INPUT: np.asarray([[row[c] for c in numeric]], dtype=np.float32),
        CATEGORICAL_INPUT: np.asarray([[row[c] for c in categorical]], dtype=object),
    }
    session = onnx._session  # the very session predict() uses
    pipeline, _ = load_model(MODELS)
    frame = pd.DataFrame([row], columns=names)
    logged = pyfunc.load_model(model_uri)
    api = schemas.build(contract)
    body = service_body(contract)
    record = api.Record.model_validate_json(body)

    timings = {
        "onnx_session_run": per_call_us(lambda: session.run([OUTPUT], feeds)),
        "onnx_model_predict": per_call_us(lambda: onnx.predict_columns(one_row)),
        "churn_validate_and_predict": per_call_us(
            lambda: onnx.predict(*api.model_inputs([api.Record.model_validate_json(body)]))
        ),
        "churn_request_validation": per_call_us(lambda: api.Record.model_validate_json(body)),
        "churn_model_inputs": per_call_us(lambda: api.model_inputs([record])),
        "sklearn_predict_proba": per_call_us(lambda: pipeline.predict_proba(frame)),
        "sklearn_frame_and_predict_proba": per_call_us(
            lambda: pipeline.predict_proba(pd.DataFrame([row], columns=names))
        ),
        "mlflow_pyfunc_predict": per_call_us(lambda: logged.predict(frame)),
    }
    check = abs(
        float(onnx.predict_columns(one_row)[0]) - float(pipeline.predict_proba(frame)[0, 1])
    )
    timings["onnx_vs_sklearn_abs_diff"] = {"value": check}
    return timings


# --------------------------------------------------------------------------- report


@dataclass
class Summary:
    server: str
    connections: int
    runs: int
    requests_per_s: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    errors: int = 0
    rss_mib: list[float] = field(default_factory=list)
    cold_start_s: list[float] = field(default_factory=list)


def spread(values: list[float], digits: int) -> str:
    if len(values) < 2:
        return ""
    return f" ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def summarise(points: list[Point], cold: dict[str, list[float]]) -> list[Summary]:
    summaries: dict[tuple[str, int], Summary] = {}
    for p in points:
        s = summaries.setdefault(
            (p.server, p.connections),
            Summary(p.server, p.connections, 0, cold_start_s=cold[p.server]),
        )
        s.runs += 1
        s.requests_per_s.append(p.requests_per_s)
        s.p50_ms.append(p.p50_ms)
        s.p99_ms.append(p.p99_ms)
        s.errors += p.errors
        s.rss_mib.append(p.rss_mib)
    return list(summaries.values())


def markdown(summaries: list[Summary]) -> str:
    lines = [
        "| server | connections | requests/s | p50 ms | p99 ms | errors | RSS MiB | cold start s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in sorted(summaries, key=lambda s: (s.server, s.connections)):
        lines.append(
            f"| {s.server} | {s.connections} "
            f"| {max(s.requests_per_s):,.0f}{spread(s.requests_per_s, 0)} "
            f"| {min(s.p50_ms):.2f}{spread(s.p50_ms, 2)} "
            f"| {min(s.p99_ms):.2f}{spread(s.p99_ms, 2)} "
            f"| {s.errors} "
            f"| {max(s.rss_mib):,.0f} "
            f"| {min(s.cold_start_s):.2f}{spread(s.cold_start_s, 2)} |"
        )
    return "\n".join(lines)


def ratios(summaries: list[Summary]) -> dict[str, float | None]:
    best = {(s.server, s.connections): s for s in summaries}
    out: dict[str, float | None] = {}
    for connections in sorted({s.connections for s in summaries}):
        churn, mlflow = best.get(("churn", connections)), best.get(("mlflow", connections))
        if churn and mlflow:
            out[f"throughput_churn_over_mlflow_{connections}c"] = round(
                max(churn.requests_per_s) / max(mlflow.requests_per_s), 1
            )
            out[f"p50_mlflow_over_churn_{connections}c"] = round(
                min(mlflow.p50_ms) / min(churn.p50_ms), 1
            )
    return out


# --------------------------------------------------------------------------- main


def targets(model_uri: str, venv_bin: Path, contract: Contract) -> list[Target]:
    return [
        Target(
            name="mlflow",
            path="/invocations",
            body=mlflow_body(contract),
            command=lambda port: [
                str(venv_bin / "mlflow"),
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "-h",
                HOST,
                "-p",
                str(port),
                "--workers",
                "1",
            ],
            probability=mlflow_probability,
        ),
        Target(
            name="churn",
            path="/predict",
            body=service_body(contract),
            command=churn_serve(venv_bin),
            probability=service_probability,
        ),
    ]


def churn_serve(venv_bin: Path, env: list[str] | None = None) -> Callable[[int], list[str]]:
    """`churn serve` of the pipeline's model on HOST:port, under `env` (``env`` arguments:
    NAME=VALUE to set, ``-u NAME`` to unset), as a Target's command."""
    prefix = ["env", *env] if env else []
    return lambda port: [
        *prefix,
        str(venv_bin / "churn"),
        "serve",
        "--host",
        HOST,
        "--port",
        str(port),
        "--model-dir",
        str(MODELS),
    ]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(
            "Serve the pipeline's model with `mlflow models serve` and with `churn serve`, "
            "each on one pinned core, and load both with wrk: throughput, latency, errors, "
            "memory and cold start, side by side."
        )
    )
    parser.add_argument("--duration", type=int, default=20, help="seconds per load point")
    parser.add_argument(
        "--connections", type=int, nargs="+", default=[1, 8, 32], help="wrk connection counts"
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="fresh server starts, each running every point"
    )
    parser.add_argument("--warmup", type=int, default=3, help="seconds of unmeasured load first")
    parser.add_argument(
        "--mlflow-model",
        default=None,
        help="model URI for mlflow (default: the logged model's URI from "
        "reports/run/mlflow_run.json; "
        "use models:/churn-classifier/<version> for the registered version)",
    )
    parser.add_argument("--server-cpu", type=int, default=0, help="core the servers run on")
    parser.add_argument("--client-cpu", type=int, default=1, help="core wrk runs on")
    parser.add_argument(
        "--skip-in-process", action="store_true", help="do not time the model in this process"
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving.json")
    return parser.parse_args()


def loadavg() -> list[float]:
    """1, 5 and 15 minute load averages: a busy neighbour shows here."""
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with Path("/proc/cpuinfo").open() as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit,
    }


@dataclass(frozen=True)
class Setup:
    record: dict[str, str]
    model_uri: str
    example_columns: list[str]
    targets: list[Target]
    env: dict[str, str]


def run_record() -> dict[str, str]:
    """What ``train`` logged: ``reports/run/mlflow_run.json`` (run id, model URI, version)."""
    path = Path("reports/run/mlflow_run.json")
    try:
        record: dict[str, str] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BenchError(f"{path}: {exc} (run `dvc repro` first)") from None
    if missing := {"run_id", "model_uri", "registered_model", "version"} - record.keys():
        raise BenchError(f"{path}: no {', '.join(sorted(missing))}")
    return record


def preflight(args: argparse.Namespace, contract: Contract) -> Setup:
    """Check the tools, cores and model; point MLflow at the repository's store."""
    if {args.server_cpu, args.client_cpu} - os.sched_getaffinity(0):
        raise BenchError(f"cores {args.server_cpu} and {args.client_cpu} must both be available")
    if args.server_cpu == args.client_cpu:
        raise BenchError("the servers and wrk must run on different cores")
    wrk_command()
    if shutil.which("taskset") is None:
        raise BenchError("taskset (util-linux) is not installed")
    record = run_record()
    model_uri = args.mlflow_model or record["model_uri"]
    venv_bin = Path(sys.executable).parent
    for tool in ("mlflow", "churn"):
        if not (venv_bin / tool).is_file():
            raise BenchError(f"{venv_bin / tool} not found: run this with the .venv's python")
    tracking = f"sqlite:///{REPO / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = tracking
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    os.chdir(REPO)  # artifact locations in the store may be relative (./mlruns)
    env = os.environ | {
        # `mlflow models serve` runs `uvicorn` by name: the venv's bin must be on PATH.
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_TRACKING_URI": tracking,
        "CHURN_MODEL_DIR": str(MODELS),
        "PYTHONUNBUFFERED": "1",
    }
    example = check_example_columns(model_uri, contract)
    return Setup(record, model_uri, example, targets(model_uri, venv_bin, contract), env)


def measure(
    server: Server, script: Path, connections: int, repeat: int, args: argparse.Namespace
) -> Point:
    name = server.target.name
    print(f"  {name}: {connections} connection(s), {args.duration} s", file=sys.stderr, flush=True)
    cpu_before = tree_cpu_s(server.process.pid)
    got = wrk(server.url, script, connections, args.duration, args.client_cpu)
    # Share of its core the server got: well under 1 at high load means a neighbour took it.
    cpu_share = (tree_cpu_s(server.process.pid) - cpu_before) / got["seconds"]
    rss = sum(tree_rss(server.process.pid).values()) / MIB
    point = Point(
        name,
        connections,
        repeat,
        requests=int(got["requests"]),
        seconds=got["seconds"],
        requests_per_s=got["requests_per_s"],
        p50_ms=got["p50_ms"],
        p99_ms=got["p99_ms"],
        non_2xx=int(got["non_2xx"]),
        socket_errors=int(got["socket_errors"]),
        rss_mib=round(rss, 1),
        server_cpu_share=round(cpu_share, 2),
    )
    print(
        f"    {point.requests_per_s:,.0f} req/s, p50 {point.p50_ms:.2f} ms, "
        f"p99 {point.p99_ms:.2f} ms, errors {point.errors}, RSS {rss:,.0f} MiB, "
        f"server CPU {point.server_cpu_share:.0%}",
        file=sys.stderr,
        flush=True,
    )
    return point


def run(args: argparse.Namespace, contract: Contract) -> dict[str, Any]:
    setup = preflight(args, contract)
    load_before = loadavg()
    print(
        f"mlflow serves {setup.model_uri} (run {setup.record['run_id']}, "
        f"{setup.record['registered_model']} v{setup.record['version']}); "
        f"churn serves {MODELS / 'model.onnx'}",
        file=sys.stderr,
    )
    points: list[Point] = []
    cold: dict[str, list[float]] = {t.name: [] for t in setup.targets}
    agreement: dict[str, float] = {}
    processes: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="churn-bench-serving-") as tmp:
        logs = Path(tmp)
        scripts = {t.name: logs / f"{t.name}.lua" for t in setup.targets}
        for target in setup.targets:
            scripts[target.name].write_text(LUA.format(body=target.body))
        for repeat in range(1, args.repeats + 1):
            print(f"repeat {repeat}/{args.repeats}", file=sys.stderr, flush=True)
            with running(setup.targets, args.server_cpu, env=setup.env, logs=logs) as servers:
                for server in servers:
                    cold[server.target.name].append(round(server.cold_start_s, 3))
                agreement = verify(servers, contract)
                for server in servers:
                    if args.warmup > 0:
                        script = scripts[server.target.name]
                        top = max(args.connections)
                        wrk(server.url, script, top, args.warmup, args.client_cpu)
                # Alternate the servers point by point: a slow phase hits both.
                for connections in args.connections:
                    for server in servers:
                        script = scripts[server.target.name]
                        points.append(measure(server, script, connections, repeat, args))
                for server in servers:
                    rss = tree_rss(server.process.pid)
                    processes[server.target.name] = {
                        str(pid): round(b / MIB, 1) for pid, b in rss.items()
                    }

    summaries = summarise(points, cold)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine() | {"loadavg_before": load_before, "loadavg_after": loadavg()},
        "settings": {
            "duration_s": args.duration,
            "connections": args.connections,
            "repeats": args.repeats,
            "warmup_s": args.warmup,
            "server_cpu": args.server_cpu,
            "client_cpu": args.client_cpu,
            "wrk_threads": 1,
        },
        "model": {
            "mlflow_model_uri": setup.model_uri,
            "run_id": setup.record["run_id"],
            "registered": f"{setup.record['registered_model']} v{setup.record['version']}",
            "serving_input_example_columns": setup.example_columns,
            "onnx": str(MODELS / "model.onnx"),
        },
        "agreement": agreement,
        "points": [asdict(p) | {"errors": p.errors} for p in points],
        "summary": [asdict(s) for s in summaries],
        "ratios": ratios(summaries),
        "rss_mib_by_process_after_last_repeat": processes,
        "table": markdown(summaries),
    }


def verify(servers: list[Server], contract: Contract) -> dict[str, float]:
    """Both servers answer 200 with the same probability for the example record."""
    probabilities: dict[str, float] = {}
    for server in servers:
        status, answer = post(server.url, server.target.body, timeout=30)
        if status != 200:
            raise BenchError(f"{server.target.name} answered {status}: {answer}")
        probabilities[server.target.name] = server.target.probability(answer)
    values = list(probabilities.values())
    difference = max(values) - min(values)
    shown = ", ".join(f"{name} {p:.8f}" for name, p in probabilities.items())
    print(
        f"  probability for record {contract.example[contract.id.name]}: {shown} "
        f"(|difference| {difference:.1e})",
        file=sys.stderr,
        flush=True,
    )
    if difference > AGREEMENT_TOLERANCE:
        raise BenchError(f"the servers disagree by {difference:.2e} > {AGREEMENT_TOLERANCE:g}")
    return probabilities | {"abs_difference": difference}


def main() -> None:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C, so the `finally` that stops the servers runs.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    contract = load_domain().contract
    try:
        report = run(args, contract)
        if not args.skip_in_process:
            print("timing one prediction in process …", file=sys.stderr, flush=True)
            model_uri = report["model"]["mlflow_model_uri"]
            report["in_process"] = in_process(model_uri, args.server_cpu, contract)
    except BenchError as exc:
        sys.exit(f"error: {exc}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")

    print(report["table"])
    print()
    agreement = report["agreement"]
    print(
        f"- probability of record {contract.example[contract.id.name]}: "
        f"mlflow {agreement['mlflow']:.8f}, churn {agreement['churn']:.8f}"
    )
    for name, value in report["ratios"].items():
        print(f"- {name}: {value}x")
    for name, timing in report.get("in_process", {}).items():
        if "best_us" in timing:
            print(
                f"- in process, {name}: {timing['best_us']:,.1f} us per call (best), "
                f"{timing['median_us']:,.1f} us (median)"
            )
        else:
            print(f"- in process, {name}: {timing['value']:.2e}")
    print(
        f"\nBest of {args.repeats} run(s) per point, (min-max) across runs; "
        f"RSS is the largest seen after a point. Written to {args.out}"
    )


if __name__ == "__main__":
    main()
