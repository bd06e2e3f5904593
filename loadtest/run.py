"""Load-test the prediction service on this machine and hold it to the SLO in params.yaml.

`make loadtest` runs this script. It

1. starts ``churn serve`` on 127.0.0.1 and a free port, serving the model in
   ``models/`` (the one ``dvc repro`` trained), and waits for ``/ready``;
2. runs locust headless with ``loadtest/locustfile.py`` and the ``loadtest``
   group of params.yaml (users, spawn rate, duration);
3. stops the server (its whole process group), whatever happened;
4. reads locust's JSON stats, writes ``summary.json`` and ``summary.md`` to
   ``loadtest/results/`` (with locust's and the server's logs), prints a table
   and checks the SLO.

Exact totals come from locust's ``--json-file``, which is written after the
last request; its ``--csv`` stats miss the last seconds of the run, so the
CSV is read only for examples of failure messages (the JSON has none).
Percentiles are computed here, nearest-rank, from the per-endpoint
response-time histograms in the JSON, merged for the "all" row. Locust
records response times in buckets of 1 ms below 100 ms and of 10 ms up to
1 s, which bounds their resolution.

Exit codes: 0 the SLO is met, 1 it is not (each broken objective is named
with the measured value), 2 the test could not run (no model, server did not
start, locust failed, invalid parameters), 130 interrupted (Ctrl-C or SIGTERM;
the server and locust are stopped first).

    python loadtest/run.py [--params params.yaml] [--out loadtest/results]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from churn.core.params import LoadtestParams, ParamsError, load_params

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

REPO = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPO / "loadtest" / "locustfile.py"
MODEL_DIR = REPO / "models"
MODEL_FILE = MODEL_DIR / "model.onnx"
DEFAULT_OUT = REPO / "loadtest" / "results"
HOST = "127.0.0.1"

EXIT_SLO_MET = 0
EXIT_SLO_BROKEN = 1
EXIT_CANNOT_RUN = 2
EXIT_INTERRUPTED = 130

READY_TIMEOUT_S = 60.0
"""Loading and self-checking the model takes a few seconds; a minute means it is stuck."""
LOCUST_GRACE_S = 60.0
"""Allowed beyond the test duration for locust's start-up and shutdown before it is killed."""
STOP_TIMEOUT_S = 10.0
FAILURE_EXAMPLES = 5
LOG_TAIL_LINES = 20
SATURATED_CPU_SHARE = 0.9
# Server settings that would change what is tested: another model, or 401s without a key.
STRIPPED_ENV = ("CHURN_MODEL_URI", "CHURN_API_KEY")


class CannotRunError(Exception):
    """The load test could not run; the message says why and what to do."""


# --- Stats: pure functions over locust's JSON, unit-tested ------------------------


@dataclass(frozen=True)
class EndpointStats:
    """One entry of locust's JSON stats (or several merged), response times in ms."""

    name: str
    requests: int
    failures: int
    histogram: dict[float, int]
    total_response_ms: float
    max_ms: float
    start_s: float
    last_request_s: float


@dataclass(frozen=True)
class Row:
    """One line of the summary table."""

    name: str
    requests: int
    failures: int
    error_rate: float
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    avg_ms: float
    max_ms: float


def parse_stats(entries: Sequence[Mapping[str, Any]]) -> list[EndpointStats]:
    """The entries of locust's ``--json-file`` output (JSON keys are strings)."""
    parsed = []
    for entry in entries:
        histogram = {float(ms): int(count) for ms, count in entry["response_times"].items()}
        last = entry["last_request_timestamp"]
        parsed.append(
            EndpointStats(
                name=f"{entry['method']} {entry['name']}",
                requests=int(entry["num_requests"]),
                failures=int(entry["num_failures"]),
                histogram=histogram,
                total_response_ms=float(entry["total_response_time"]),
                max_ms=float(entry["max_response_time"]),
                start_s=float(entry["start_time"]),
                last_request_s=float(last if last is not None else entry["start_time"]),
            )
        )
    return parsed


def merge(entries: Iterable[EndpointStats], name: str = "all") -> EndpointStats:
    """All endpoints as one: counts and histograms added, the widest time window."""
    entries = list(entries)
    histogram: Counter[float] = Counter()
    for entry in entries:
        histogram.update(entry.histogram)
    return EndpointStats(
        name=name,
        requests=sum(e.requests for e in entries),
        failures=sum(e.failures for e in entries),
        histogram=dict(histogram),
        total_response_ms=sum(e.total_response_ms for e in entries),
        max_ms=max((e.max_ms for e in entries), default=0.0),
        start_s=min((e.start_s for e in entries), default=0.0),
        last_request_s=max((e.last_request_s for e in entries), default=0.0),
    )


def percentile(histogram: Mapping[float, int], fraction: float) -> float:
    """Nearest-rank percentile of a ``{value: count}`` histogram (``fraction`` in (0, 1]).

    The smallest value with at least ``ceil(fraction * n)`` observations at or
    below it: always an observed value, never an interpolation.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    total = sum(histogram.values())
    if total <= 0:
        raise ValueError("no observations")
    # round() first: 0.99 * 100 is 99.00000000000001 in binary floating point.
    rank = max(1, math.ceil(round(fraction * total, 9)))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    raise AssertionError("unreachable: the ranks add up to the total")


def summarize(entry: EndpointStats) -> Row:
    """Counts, rates and latencies of one endpoint (or of all, merged)."""
    if entry.requests <= 0 or not entry.histogram:
        raise ValueError(f"{entry.name}: no requests recorded")
    window = entry.last_request_s - entry.start_s
    return Row(
        name=entry.name,
        requests=entry.requests,
        failures=entry.failures,
        error_rate=entry.failures / entry.requests,
        requests_per_s=entry.requests / window if window > 0 else 0.0,
        p50_ms=percentile(entry.histogram, 0.50),
        p99_ms=percentile(entry.histogram, 0.99),
        avg_ms=entry.total_response_ms / entry.requests,
        max_ms=entry.max_ms,
    )


def table(entries: Sequence[EndpointStats]) -> list[Row]:
    """One row per endpoint, sorted by name, then the "all" row (last)."""
    if not entries:
        raise ValueError("locust recorded no requests")
    rows = [summarize(e) for e in sorted(entries, key=lambda e: e.name)]
    return [*rows, summarize(merge(entries))]


def slo_violations(overall: Row, slo: LoadtestParams) -> list[str]:
    """Each objective that ``overall`` (the "all" row) breaks, with the measured value."""
    violations = []
    if overall.error_rate > slo.max_error_rate:
        violations.append(
            f"error rate {overall.error_rate:.3%} ({overall.failures} of {overall.requests} "
            f"requests failed) is above loadtest.max_error_rate = {slo.max_error_rate:.3%}"
        )
    if overall.p99_ms > slo.max_p99_ms:
        violations.append(
            f"p99 response time {overall.p99_ms:g} ms is above "
            f"loadtest.max_p99_ms = {slo.max_p99_ms:g} ms"
        )
    return violations


def render_table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width text table."""
    header = (
        f"{'endpoint':<22}{'requests':>10}{'failures':>10}{'errors':>9}{'req/s':>9}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'avg ms':>8}{'max ms':>8}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(
            f"{row.name:<22}{row.requests:>10}{row.failures:>10}{row.error_rate:>9.2%}"
            f"{row.requests_per_s:>9.1f}{row.p50_ms:>8g}{row.p99_ms:>8g}{row.avg_ms:>8.1f}"
            f"{row.max_ms:>8.0f}"
        )
    return "\n".join(lines)


def render_markdown(summary: Mapping[str, Any], rows: Sequence[Row]) -> str:
    """The summary as a Markdown report."""
    slo = summary["params"]
    verdict = "met" if not summary["violations"] else "**not met**"
    lines = [
        "# Load test of the prediction service",
        "",
        f"{summary['finished_at']}, model version {summary['model_version']}, "
        f"{slo['users']} users (spawn rate {slo['spawn_rate']:g}/s) for {slo['duration_s']} s, "
        f"{summary['cpu']['cores']} CPU cores shared by the server and locust.",
        "",
        "| endpoint | requests | failures | errors | req/s | p50 ms | p99 ms | avg ms | max ms |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    lines += [
        f"| {r.name} | {r.requests} | {r.failures} | {r.error_rate:.2%} | "
        f"{r.requests_per_s:.1f} | {r.p50_ms:g} | {r.p99_ms:g} | {r.avg_ms:.1f} | {r.max_ms:.0f} |"
        for r in rows
    ]
    lines += [
        "",
        f"SLO (p99 ≤ {slo['max_p99_ms']:g} ms, error rate ≤ {slo['max_error_rate']:.2%}): "
        f"{verdict}.",
    ]
    lines += [f"- {v}" for v in summary["violations"]]
    lines += ["", "CPU:", *[f"- {note}" for note in summary["cpu"]["notes"]]]
    if summary["failure_examples"]:
        lines += ["", "Failure examples (from locust's CSV, which may miss the last seconds):"]
        lines += [
            f"- {f['count']}x {f['endpoint']}: {f['error']}" for f in summary["failure_examples"]
        ]
    lines += ["", summary["method"], ""]
    return "\n".join(lines)


# --- Running the server and locust ---------------------------------------------


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def churn_command() -> Path:
    """The ``churn`` script of this interpreter's environment."""
    script = Path(sys.executable).with_name("churn")
    if not script.is_file():
        raise CannotRunError(f"{script} not found: run `make install` first")
    return script


def process_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc), None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # After the ")" ending the command name: field 3 is the state, 14 and 15 utime and stime.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_s() -> float:
    """CPU seconds of the children this process has waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_s() -> float | None:
    """CPU seconds all cores spent busy since boot, every process (Linux /proc), or None."""
    try:
        ticks = [int(t) for t in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal ...: busy is all but idle and iowait.
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process started in its own session: SIGTERM to its group, then SIGKILL."""
    if process.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, STOP_TIMEOUT_S)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log, indented, for an error message."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return "    (no log)"
    return "\n".join(f"    {line}" for line in text)


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path, timeout_s: float) -> str:
    """Poll ``/ready`` until it answers 200; return the served model version."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (code := process.poll()) is not None:
            raise CannotRunError(
                f"the server exited with code {code} before it was ready:\n{tail(log)}"
            )
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                body = json.load(response)
                return str(body.get("model_version", "unknown"))
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            time.sleep(0.2)
    raise CannotRunError(f"the server was not ready after {timeout_s:g} s:\n{tail(log)}")


def start_server(port: int, log: IO[bytes]) -> subprocess.Popen[bytes]:
    """``churn serve`` on 127.0.0.1, in its own session so that its group can be stopped."""
    env = {k: v for k, v in os.environ.items() if k not in STRIPPED_ENV}
    command = [str(churn_command()), "serve", "--host", HOST, "--port", str(port)]
    return subprocess.Popen(
        [*command, "--model-dir", str(MODEL_DIR)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def run_locust(url: str, slo: LoadtestParams, out: Path, log: IO[bytes]) -> tuple[int, float]:
    """Locust headless against ``url``; return its exit code and wall time."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(slo.users),
        "--spawn-rate",
        f"{slo.spawn_rate:g}",
        "--run-time",
        f"{slo.duration_s}s",
        "--host",
        url,
        "--json-file",
        str(out / "locust"),  # locust appends ".json"
        "--csv",
        str(out / "locust"),
        "--only-summary",
        "--exit-code-on-error",
        "0",  # failures are judged here, against the SLO
    ]
    started = time.monotonic()
    # cwd = the repository: locust puts it on sys.path, so the locustfile imports loadtest.*
    locust = subprocess.Popen(
        command,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        code = locust.wait(slo.duration_s + LOCUST_GRACE_S)
    except subprocess.TimeoutExpired:
        stop(locust)
        raise CannotRunError(
            f"locust did not finish within {slo.duration_s + LOCUST_GRACE_S:g} s; stopped it"
        ) from None
    finally:
        stop(locust)
    return code, time.monotonic() - started


def failure_examples(failures_csv: Path) -> list[dict[str, Any]]:
    """The most frequent failure messages from locust's ``_failures.csv``."""
    try:
        with failures_csv.open(newline="") as handle:
            records = list(csv.DictReader(handle))
    except OSError:
        return []
    records.sort(key=lambda r: -int(r.get("Occurrences") or 0))
    return [
        {
            "endpoint": f"{r['Method']} {r['Name']}",
            "error": r["Error"],
            "count": int(r["Occurrences"]),
        }
        for r in records[:FAILURE_EXAMPLES]
    ]


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds used while locust ran, by each side and by the whole machine."""

    wall_s: float
    locust_s: float
    server_s: float | None
    machine_s: float | None


def cpu_notes(use: CpuUse, cores: int) -> dict[str, Any]:
    """Each side's CPU as a share of one core, the machine's as a share of all, with notes."""

    def share(seconds: float | None) -> float | None:
        return None if seconds is None else seconds / use.wall_s

    server, locust, machine = share(use.server_s), share(use.locust_s), share(use.machine_s)
    notes = [f"{cores} cores, shared by the server (one process) and locust (one process)"]
    if server is not None:
        notes.append(f"server: {server:.0%} of one core")
    notes.append(f"locust: {locust:.0%} of one core (its start-up included)")
    if machine is not None:
        notes.append(f"machine: {machine / cores:.0%} of all {cores} cores busy")
        if server is not None and (others := machine - server - (locust or 0)) >= 0.1:
            notes.append(f"other processes used {others:.0%} of a core: figures may be low")
    if server is not None and server >= SATURATED_CPU_SHARE:
        notes.append(
            "the server saturates its core: req/s is its single-process capacity here "
            "(run one process per core to scale)"
        )
    if locust is not None and locust >= SATURATED_CPU_SHARE:
        notes.append(
            "locust saturates its core: latencies include the load generator's own delays "
            "and req/s may be limited by locust, not the server"
        )
    return {
        "cores": cores,
        "server_core_share": server,
        "locust_core_share": locust,
        "machine_share": None if machine is None else machine / cores,
        "notes": notes,
    }


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


def load_test(slo: LoadtestParams, out: Path, ready_timeout_s: float) -> dict[str, Any]:
    """Run the whole test; return what the summary needs (raises `CannotRunError`)."""
    if not MODEL_FILE.is_file():
        raise CannotRunError(
            f"{MODEL_FILE.relative_to(REPO)} not found: run `make demo` first "
            "(it trains the model with dvc repro)"
        )
    out.mkdir(parents=True, exist_ok=True)
    stats_file = out / "locust.json"
    stats_file.unlink(missing_ok=True)  # never read a previous run's stats
    port = free_port()
    url = f"http://{HOST}:{port}"
    with (out / "server.log").open("wb") as server_log, (out / "locust.log").open("wb") as lg:
        server = start_server(port, server_log)
        try:
            version = wait_ready(server, url, out / "server.log", ready_timeout_s)
            print(
                f"server ready at {url} (model v{version}); locust: {slo.users} users "
                f"for {slo.duration_s} s…",
                flush=True,
            )
            before = (process_cpu_s(server.pid), children_cpu_s(), machine_busy_s())
            code, wall_s = run_locust(url, slo, out, lg)
            after = (process_cpu_s(server.pid), children_cpu_s(), machine_busy_s())
        finally:
            stop(server)
    if code != 0 or not stats_file.is_file():
        raise CannotRunError(f"locust failed (exit code {code}):\n{tail(out / 'locust.log')}")
    use = CpuUse(
        wall_s=wall_s,
        locust_s=after[1] - before[1],
        server_s=_delta(before[0], after[0]),
        machine_s=_delta(before[2], after[2]),
    )
    return {
        "model_version": version,
        "entries": json.loads(stats_file.read_text()),
        "cpu": cpu_notes(use, os.cpu_count() or 1),
        "failure_examples": failure_examples(out / "locust_failures.csv"),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Results directory.")
    parser.add_argument("--ready-timeout", type=float, default=READY_TIMEOUT_S, metavar="S")
    args = parser.parse_args(argv)
    try:
        slo = load_params(args.params).loadtest
        result = load_test(slo, args.out, args.ready_timeout)
        rows = table(parse_stats(result["entries"]))
    except (ParamsError, CannotRunError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        print("interrupted: the server and locust were stopped", file=sys.stderr)
        return EXIT_INTERRUPTED
    overall = rows[-1]
    violations = slo_violations(overall, slo)
    summary = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_version": result["model_version"],
        "params": slo.model_dump(),
        "rows": [asdict(r) for r in rows],
        "slo_met": not violations,
        "violations": violations,
        "cpu": result["cpu"],
        "failure_examples": result["failure_examples"],
        "method": (
            "Counts and times from locust's JSON stats. Percentiles: nearest-rank over "
            "locust's response-time histogram (1 ms buckets below 100 ms, 10 ms to 1 s). "
            "req/s: requests / (last request - test start), ramp-up included."
        ),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (args.out / "summary.md").write_text(render_markdown(summary, rows))
    print(render_table(rows))
    print("\n".join(f"CPU: {note}" for note in result["cpu"]["notes"]))
    for example in result["failure_examples"]:
        print(f"failure: {example['count']}x {example['endpoint']}: {example['error']}")
    print(f"results in {args.out}")
    if violations:
        for violation in violations:
            print(f"SLO not met: {violation}", file=sys.stderr)
        return EXIT_SLO_BROKEN
    print(
        f"SLO met: p99 {overall.p99_ms:g} ms ≤ {slo.max_p99_ms:g} ms, "
        f"error rate {overall.error_rate:.2%} ≤ {slo.max_error_rate:.2%}"
    )
    return EXIT_SLO_MET


if __name__ == "__main__":
    # SIGTERM (CI cancelling the job) unwinds like Ctrl-C: the server is stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(main())
