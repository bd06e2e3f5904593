"""What an A/B test and shadow mode cost: `churn serve` plain, with A/B on, with shadow on.

Three `churn serve` processes on the pipeline's ``models/``:

- ``off``: no candidate (the service as it runs without rollouts);
- ``ab``: a candidate in the standby slot (``CHURN_CHALLENGER_MODEL_DIR``)
  answering ``CHURN_AB_CHALLENGER_SHARE`` (0.5) of the records;
- ``shadow``: the same candidate scoring every record in shadow mode
  (``CHURN_SHADOW``), its scores logged, never returned.

The candidate is ``--challenger`` (default: ``models/`` itself, an A/A
setup: any logistic regression of the contract's features costs the same to
score). Every request carries a random record id (``wrk`` draws one of up
to 10,000 real ids from ``data/raw`` per request), so the A/B server really
splits its traffic; all three
servers get the same script. With ``--log`` all three also write the
prediction log, where the shadow's score and the variant go.

As in ``serving.py``, each server is pinned to core 0 and ``wrk`` to core 1;
the servers alternate point by point and the order rotates every repeat.
Per point: requests/s, p50, p99 and the server's CPU time per request.
Then, on the server without a candidate, one connection of load while
``/admin/models/standby`` loads the candidate every 0.5 s (what loading
beside a serving model costs the requests). Last, `in_process` times the
routing and scoring steps per request.

    python bench/rollouts.py                            # 3 repeats x {1, 32} connections x 10 s
    python bench/rollouts.py --duration 5 --repeats 1   # a quick look
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
import timeit
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prediction_log import cpu_us_per_request
from serving import (
    HOST,
    MODELS,
    REPO,
    BenchError,
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

from churn.core.contract import api_name
from churn.core.domain import load_domain

if TYPE_CHECKING:
    from churn.core.domain import Domain

OFF, AB, SHADOW = "off", "ab", "shadow"
ADMIN_KEY = "bench-admin-key-0123456789"  # /admin needs its own key
SERVERS = (OFF, AB, SHADOW)
SHARE = 0.5
IDS = 10_000
PLACEHOLDER = "RECORD_ID"
# One of the ids per request, drawn by wrk (on its own core).
LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local template = [==[BODY]==]
local ids = {IDS}
math.randomseed(1)
request = function()
  local id = ids[math.random(1, #ids)]:gsub("%%", "%%%%")
  return wrk.format(nil, nil, nil, (template:gsub("RECORD_ID", id)))
end
"""


def record_ids(domain: Domain, count: int = IDS) -> list[str]:
    """Up to ``count`` distinct record ids of the raw data (valid ids, whatever their format)."""
    from churn.core.data import load

    frame = load(sorted((REPO / "data" / "raw").glob("*.csv")), domain)
    ids = frame[domain.contract.id.name].dropna().astype(str).drop_duplicates()
    if ids.empty:
        raise BenchError("the raw data has no record ids to send")
    return ids.head(count).tolist()


def lua_script(domain: Domain) -> str:
    """The wrk script: the example record, with one of the raw data's ids per request."""
    contract = domain.contract
    body = json.dumps({**contract.api_example(), api_name(contract.id.name): PLACEHOLDER})
    ids = ", ".join(f"[==[{value}]==]" for value in record_ids(domain))
    return LUA.replace("BODY", body).replace("{IDS}", "{" + ids + "}")


def targets(venv_bin: Path, challenger: Path, log_dir: Path | None, body: str) -> list[Target]:
    def command(name: str, env: list[str]) -> Callable[[int], list[str]]:
        if log_dir is not None:
            env = [*env, f"CHURN_PREDICTION_LOG_DIR={log_dir / name}"]
        # Admin on for `loading_while_serving`; it costs nothing per request.
        admin = [
            "CHURN_ADMIN_ENABLED=true",
            f"CHURN_ADMIN_API_KEY={ADMIN_KEY}",
            f"CHURN_ADMIN_MODELS_ROOT={challenger.parent}",
        ]
        return churn_serve(venv_bin, ["-u", "CHURN_PREDICTION_LOG_DIR", *admin, *env])

    candidate = f"CHURN_CHALLENGER_MODEL_DIR={challenger}"
    envs = {
        OFF: [],
        AB: [candidate, f"CHURN_AB_CHALLENGER_SHARE={SHARE}", "CHURN_AB_SALT=bench"],
        SHADOW: [candidate, "CHURN_SHADOW=true"],
    }
    return [
        Target(name, "/predict", body, command(name, env), service_probability)
        for name, env in envs.items()
    ]


def answered_by_variant(port: int) -> dict[str, float]:
    """churn_predictions_total by variant, and the shadow's counters, from /metrics."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if (
            line.startswith(("churn_predictions_total{", "churn_shadow_"))
            and "_created" not in line
        ):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def loading_while_serving(
    server: Any, script: Path, challenger: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """One connection of load while the candidate is loaded again and again (every 0.5 s).

    The loads run in the server's worker thread; this shows what they cost
    the requests answered meanwhile (wrk's p50 and p99) and how long a load
    takes end to end.
    """
    stop = threading.Event()
    took: list[float] = []
    failed: list[str] = []
    body = json.dumps({"model_dir": str(challenger)}).encode()

    def reload() -> None:
        while not stop.wait(0.5):
            request = urllib.request.Request(
                f"http://{HOST}:{server.port}/admin/models/standby",
                data=body,
                headers={"Content-Type": "application/json", "X-API-Key": ADMIN_KEY},
                method="POST",
            )
            begin = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()
            except OSError as exc:  # urllib's HTTPError included
                failed.append(str(exc))
                continue
            took.append(time.perf_counter() - begin)

    loader_thread = threading.Thread(target=reload)
    loader_thread.start()
    try:
        got = wrk(server.url, script, 1, args.duration, args.client_cpu)
    finally:
        stop.set()
        loader_thread.join(timeout=60)
    if failed or got["non_2xx"] or got["socket_errors"]:
        raise BenchError(f"loading while serving: failed loads {failed[:3]}, wrk {got}")
    return {
        "server": server.target.name,
        "loads": len(took),
        "load_ms_median": round(1e3 * statistics.median(took), 1) if took else None,
        "load_ms_max": round(1e3 * max(took), 1) if took else None,
        "requests_per_s": got["requests_per_s"],
        "p50_ms": got["p50_ms"],
        "p99_ms": got["p99_ms"],
    }


def summarise(points: list[dict[str, Any]], connections: list[int]) -> list[dict[str, Any]]:
    rows = []
    for count in connections:
        row: dict[str, Any] = {"connections": count}
        for name in SERVERS:
            mine = [p for p in points if p["server"] == name and p["connections"] == count]
            row[name] = {
                "requests_per_s": [p["requests_per_s"] for p in mine],
                "p50_ms": [p["p50_ms"] for p in mine],
                "p99_ms": [p["p99_ms"] for p in mine],
                "cpu_us_per_request": [p["cpu_us_per_request"] for p in mine],
                "errors": sum(p["non_2xx"] + p["socket_errors"] for p in mine),
            }
        # Paired: each repeat's point against the `off` point measured next to it.
        by_repeat = {(p["server"], p["repeat"]): p for p in points if p["connections"] == count}
        repeats = sorted({p["repeat"] for p in points})
        for name in (AB, SHADOW):
            for key, field in (("throughput", "requests_per_s"), ("cpu", "cpu_us_per_request")):
                ratios = [
                    by_repeat[name, r][field] / by_repeat[OFF, r][field]
                    for r in repeats
                    if (name, r) in by_repeat and (OFF, r) in by_repeat
                ]
                change = statistics.median(ratios) - 1
                row[f"{name}_{key}_change_pct_median"] = round(100 * change, 1)
        rows.append(row)
    return rows


def _range(values: list[float], digits: int) -> str:
    middle = statistics.median(values)
    return f"{middle:,.{digits}f} ({min(values):,.{digits}f}-{max(values):,.{digits}f})"


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| connections | server | requests/s | p50 ms | p99 ms | CPU µs/request | errors |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        for name in SERVERS:
            r = row[name]
            lines.append(
                f"| {row['connections']} | {name} "
                f"| {_range(r['requests_per_s'], 0)} | {_range(r['p50_ms'], 2)} "
                f"| {_range(r['p99_ms'], 2)} | {_range(r['cpu_us_per_request'], 0)} "
                f"| {r['errors']} |"
            )
    return "\n".join(lines)


def in_process(cpu: int, challenger: Path, domain: Domain) -> dict[str, float]:
    """Microseconds per one-record request of each step, in this process pinned to ``cpu``.

    Routing and scoring (`Traffic.score`) without a candidate, with A/B on
    and with shadow on; and encoding the log line with and without a shadow
    score.
    """
    from churn.serving import loader, schemas
    from churn.serving.middleware import ServiceMetrics
    from churn.serving.prediction_log import encode_predictions
    from churn.serving.rollout import Slots, Traffic
    from churn.serving.settings import ServingSettings

    os.sched_setaffinity(0, {cpu})
    contract = domain.contract
    settings = ServingSettings(model_dir=MODELS)
    champion = loader.load(settings, contract)
    candidate = loader.load(settings.model_copy(update={"model_dir": challenger}), contract)
    metrics = ServiceMetrics()
    api = schemas.build(contract)
    record = api.Record.model_validate_json(service_body(contract))
    inputs = api.model_inputs([record])
    ids = (getattr(record, api.id_field),)
    # A different record each call, as under wrk: the A/B test then uses both models.
    rotating = itertools.cycle([(value,) for value in record_ids(domain)])
    plain = Traffic.build(Slots(champion), settings, metrics)
    ab = Traffic.build(
        Slots(champion).load(candidate),
        settings.model_copy(update={"ab_challenger_share": SHARE}),
        metrics,
    )
    shadow = Traffic.build(
        Slots(champion).load(candidate), settings.model_copy(update={"shadow": True}), metrics
    )
    scored = shadow.score(*inputs, ids)
    now = time.time()
    calls: dict[str, Callable[[], object]] = {
        "onnx_predict_us": partial(champion.model.predict, *inputs),
        **{
            f"score_{name}_us": partial(_score_next, traffic, inputs, rotating)
            for name, traffic in ((OFF, plain), (AB, ab), (SHADOW, shadow))
        },
        "encode_us": partial(
            encode_predictions,
            now,
            "r" * 32,
            champion,
            (record,),
            scored.scores,
            id_field=api.id_field,
        ),
        "encode_with_shadow_us": partial(
            encode_predictions,
            now,
            "r" * 32,
            champion,
            (record,),
            scored.scores,
            id_field=api.id_field,
            shadow=scored.shadow,
        ),
    }
    return interleaved_best_us(calls)


def _score_next(traffic: Any, inputs: Any, ids: Iterator[tuple[str]]) -> object:
    return traffic.score(*inputs, next(ids))


def interleaved_best_us(
    calls: dict[str, Callable[[], object]], rounds: int = 40, loop_s: float = 0.05
) -> dict[str, float]:
    """Best per-call microseconds of each call, timed in turns.

    Round after round, each call is timed for about ``loop_s``; the best
    round counts. Taking turns means a slow phase of a shared machine hits
    every call alike, where timing one call after the other would compare
    a fast minute with a slow one.
    """
    timers = {name: timeit.Timer(call) for name, call in calls.items()}
    numbers = {}
    for name, timer in timers.items():
        count, took = timer.autorange()
        numbers[name] = max(1, int(count * loop_s / max(took, 1e-9)))
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(rounds):
        for name, timer in timers.items():
            best[name] = min(best[name], timer.timeit(numbers[name]) / numbers[name] * 1e6)
    return {name: round(value, 2) for name, value in best.items()}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Load `churn serve` without a candidate, with an A/B test and with shadow "
        "mode (wrk, pinned cores)."
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per load point")
    parser.add_argument("--connections", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--challenger", type=Path, default=MODELS, help="the candidate's model directory"
    )
    parser.add_argument("--log", action="store_true", help="all servers write the prediction log")
    parser.add_argument("--skip-in-process", action="store_true")
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "rollouts.json")
    return parser.parse_args()


def run(args: argparse.Namespace, domain: Domain) -> dict[str, Any]:
    if {args.server_cpu, args.client_cpu} - os.sched_getaffinity(0):
        raise BenchError(f"cores {args.server_cpu} and {args.client_cpu} must both be available")
    wrk_command()
    venv_bin = Path(sys.executable).parent
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    load_before = loadavg()
    points: list[dict[str, Any]] = []
    counters: list[dict[str, Any]] = []
    reloading: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="churn-bench-rollouts-") as tmp:
        work = Path(tmp)
        script = work / "predict.lua"
        script.write_text(lua_script(domain))
        body = service_body(domain.contract)  # what a server is first checked with
        servers_targets = targets(venv_bin, args.challenger, work if args.log else None, body)
        for repeat in range(1, args.repeats + 1):
            shift = (repeat - 1) % len(servers_targets)
            order = servers_targets[shift:] + servers_targets[:shift]
            print(f"repeat {repeat}/{args.repeats}: {', '.join(t.name for t in order)}",
                  file=sys.stderr)  # fmt: skip
            with running(order, args.server_cpu, env=env, logs=work) as servers:
                for server in servers:
                    wrk(server.url, script, max(args.connections), args.warmup, args.client_cpu)
                for connections in args.connections:
                    for server in servers:
                        point = measure(server, script, connections, repeat, args)
                        if point.errors:
                            raise BenchError(
                                f"{server.target.name}: {point.errors} failed requests; its "
                                f"log ends:\n{server.log_tail()}"
                            )
                        points.append(
                            asdict(point)
                            | {"cpu_us_per_request": round(cpu_us_per_request(point), 1)}
                        )
                off = next(s for s in servers if s.target.name == OFF)
                reloading.append(loading_while_serving(off, script, args.challenger, args))
                print(f"  loading while serving: {reloading[-1]}", file=sys.stderr, flush=True)
                for server in servers:
                    counters.append(
                        {"repeat": repeat, "server": server.target.name}
                        | answered_by_variant(server.port)
                    )
    rows = summarise(points, args.connections)
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine() | {"loadavg_before": load_before, "loadavg_after": loadavg()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "points": points,
        "counters": counters,
        "loading_while_serving": reloading,
        "summary": rows,
        "table": markdown(rows),
    }


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    domain = load_domain()
    try:
        report = run(args, domain)
        if not args.skip_in_process:
            report["in_process_us"] = in_process(args.server_cpu, args.challenger, domain)
    except BenchError as exc:
        sys.exit(f"error: {exc}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(report["table"])
    print()
    for row in report["summary"]:
        for name in (AB, SHADOW):
            print(
                f"- {row['connections']} connection(s), {name} vs off (median of paired "
                f"repeats): throughput "
                f"{row[f'{name}_throughput_change_pct_median']:+.1f}%, CPU per request "
                f"{row[f'{name}_cpu_change_pct_median']:+.1f}%"
            )
    for entry in report["loading_while_serving"]:
        print(f"- loading the candidate every 0.5 s, 1 connection: {entry}")
    for entry in report["counters"]:
        if entry["server"] != OFF:
            print(f"- {entry}")
    for name, value in report.get("in_process_us", {}).items():
        print(f"- in process, one record: {name} {value}")
    print(f"\nMedian (min-max) of {args.repeats} repeat(s). Written to {args.out}")


if __name__ == "__main__":
    main()
