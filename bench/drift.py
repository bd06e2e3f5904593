"""How often `churn drift` cries wolf, and how often it catches a real shift.

Every figure comes from the real file (data/raw/telco_churn.csv, 7,043
customers) and the rules in ``params.yaml``'s ``drift`` section:

- **false alarms**: samples of the reference's own distribution must not be
  called drift. Two kinds of sample: *bootstrap* (rows drawn with replacement
  from the whole file, compared with the whole file) and *split* (the file
  shuffled and cut in two, the smaller part compared with the rest: two
  disjoint samples of one population, the situation a monitor really faces);
- **detection**: the same bootstrap samples after a price rise, which must be
  called drift. One- and two-year customers leave their contracts for
  month-to-month, and month-to-month prices go up (`price_rise`). Every
  shifted sample passes the contract (`churn.drift.check`): tenure and the
  cross-field rules are untouched, ``TotalCharges`` gains one month at the
  new price;
- **strength sweep**: the detection rate as the shift grows from nothing to
  the strong one, to show where the threshold sits.

It also times the in-process functions and the ``churn drift`` command.

    python bench/drift.py                          # 200 repeats per scenario
    python bench/drift.py --repeats 50 --out /tmp  # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from churn.drift import (
    DriftResult,
    build_profile,
    check,
    compare,
    compare_counts,
    count,
    load_checked,
)
from churn.params import DriftParams, load_params

REPO = Path(__file__).resolve().parent.parent
REAL_DATA = REPO / "data" / "raw" / "telco_churn.csv"
SEED = 0
SIZES = (200, 2_000, 5_000)
SPLIT_SIZE = 2_000


@dataclass(frozen=True)
class Shift:
    """A price rise: ``move_share`` of one- and two-year customers go month-to-month,
    and every month-to-month customer's charge rises by a uniform factor in ``rise``."""

    name: str
    move_share: float
    rise: tuple[float, float]


NONE = Shift("none", 0.0, (0.0, 0.0))
STRONG = Shift("strong", 0.40, (0.10, 0.20))
MILD = Shift("mild", 0.20, (0.05, 0.10))
SWEEP_STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def price_rise(frame: pd.DataFrame, shift: Shift, rng: np.random.Generator) -> pd.DataFrame:
    """``frame`` after the price rise; clean (contract) format in, the same out."""
    out = frame.copy()
    on_contract = out["Contract"].ne("Month-to-month").to_numpy()
    moves = on_contract & (rng.random(len(out)) < shift.move_share)
    out.loc[moves, "Contract"] = "Month-to-month"
    monthly = out["MonthlyCharges"].to_numpy(dtype=np.float64)
    factor = 1 + rng.uniform(*shift.rise, size=len(out))
    raised = np.where(out["Contract"].eq("Month-to-month"), monthly * factor, monthly).round(2)
    tenure = out["tenure"].to_numpy(dtype=np.float64)
    total = out["TotalCharges"].to_numpy(dtype=np.float64)
    out["MonthlyCharges"] = raised
    # One month billed at the new price; customers not yet billed stay at 0.
    out["TotalCharges"] = np.where(tenure > 0, (total + raised - monthly).round(2), 0.0)
    return out


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "bootstrap" or "split"
    rows: int
    shift: Shift
    expected_drift: bool


@dataclass
class ScenarioResult:
    scenario: str
    kind: str
    rows: int
    shift: str
    expected_drift: bool
    repeats: int
    alarm_rate: float
    flag_rate: dict[str, float]  # per feature: share of repeats where it drifted
    psi_median: dict[str, float]
    psi_p95: dict[str, float]
    psi_max: dict[str, float]


def run_scenario(
    scenario: Scenario, reference: pd.DataFrame, params: DriftParams, repeats: int, seed: int
) -> ScenarioResult:
    rng = np.random.default_rng(seed)
    whole = build_profile(reference, params.numeric_bins)
    results: list[DriftResult] = []
    for _ in range(repeats):
        if scenario.kind == "bootstrap":
            sample = reference.iloc[rng.integers(0, len(reference), scenario.rows)]
            profile = whole
        else:
            order = rng.permutation(len(reference))
            sample = reference.iloc[order[: scenario.rows]]
            profile = build_profile(reference.iloc[order[scenario.rows :]], params.numeric_bins)
        current = price_rise(sample, scenario.shift, rng)
        check(current, scenario.name)  # the shift keeps every contract rule
        results.append(compare_counts(profile, count(profile, current), params))
    names = [f.feature for f in results[0].features]
    psi = {n: [r.features[i].psi for r in results] for i, n in enumerate(names)}
    flags = {n: [r.features[i].drifted for r in results] for i, n in enumerate(names)}
    return ScenarioResult(
        scenario=scenario.name,
        kind=scenario.kind,
        rows=scenario.rows,
        shift=scenario.shift.name,
        expected_drift=scenario.expected_drift,
        repeats=repeats,
        alarm_rate=sum(r.drift for r in results) / repeats,
        flag_rate={n: sum(v) / repeats for n, v in flags.items()},
        psi_median={n: float(np.median(v)) for n, v in psi.items()},
        psi_p95={n: float(np.quantile(v, 0.95)) for n, v in psi.items()},
        psi_max={n: max(v) for n, v in psi.items()},
    )


def scenarios() -> list[Scenario]:
    found = [Scenario(f"null bootstrap {n}", "bootstrap", n, NONE, False) for n in SIZES]
    found.append(Scenario(f"null split {SPLIT_SIZE}", "split", SPLIT_SIZE, NONE, False))
    for shift in (STRONG, MILD):
        found += [Scenario(f"{shift.name} shift {n}", "bootstrap", n, shift, True) for n in SIZES]
    return found


def sweep(
    reference: pd.DataFrame, params: DriftParams, repeats: int, seed: int
) -> list[ScenarioResult]:
    """Detection rate at 5,000 rows as the shift grows from none to `STRONG`."""
    out = []
    for strength in SWEEP_STRENGTHS:
        shift = Shift(
            f"{strength:.0%} of strong",
            STRONG.move_share * strength,
            (STRONG.rise[0] * strength, STRONG.rise[1] * strength),
        )
        scenario = Scenario(f"sweep {shift.name}", "bootstrap", 5_000, shift, strength > 0)
        out.append(run_scenario(scenario, reference, params, repeats, seed))
    return out


def timings(reference: pd.DataFrame, params: DriftParams) -> dict[str, float]:
    """Milliseconds, best of several runs, for each layer of the API and the CLI."""
    rng = np.random.default_rng(SEED)
    current = price_rise(reference.iloc[rng.integers(0, len(reference), 5_000)], STRONG, rng)
    profile = build_profile(reference, params.numeric_bins)
    counts = count(profile, current)

    def clock(action: Callable[[], object], runs: int = 20) -> float:
        """Best of ``runs``, in seconds."""
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            action()
            seconds.append(time.perf_counter() - start)
        return min(seconds)

    feature = profile.features[1]
    value = float(current[feature.name].iloc[0])
    ms = {
        "compare_7043_vs_5000_ms": lambda: compare(reference, current, params),
        "build_profile_7043_ms": lambda: build_profile(reference, params.numeric_bins),
        "check_5000_ms": lambda: check(current, "current"),
        "count_5000_ms": lambda: count(profile, current),
        "compare_counts_ms": lambda: compare_counts(profile, counts, params),
    }
    found = {name: round(clock(action) * 1e3, 2) for name, action in ms.items()}
    found["bin_index_one_value_us"] = round(clock(lambda: feature.bin_index(value), 1000) * 1e6, 2)
    churn = Path(sys.executable).with_name("churn")
    if not churn.is_file():
        return found
    with tempfile.TemporaryDirectory(prefix="churn-drift-") as tmp:
        path = Path(tmp) / "current.csv"
        current.drop(columns=["customerID", "Churn"]).to_csv(path, index=False)
        base = [str(churn), "drift", "--reference", str(REAL_DATA), "--current", str(path)]
        for label, extra in (
            ("cli_s", []),
            ("cli_with_report_s", ["--report", f"{tmp}/r.html", "--json", f"{tmp}/r.json"]),
        ):
            seconds = []
            for _ in range(3):
                start = time.perf_counter()
                subprocess.run(
                    [*base, "--params", str(REPO / "params.yaml"), *extra],
                    capture_output=True,
                    check=False,
                )
                seconds.append(time.perf_counter() - start)
            found[label] = round(min(seconds), 2)
    return found


def markdown(results: list[ScenarioResult], sweep_results: list[ScenarioResult]) -> str:
    lines = [
        "| scenario | rows | repeats | expected | drift called | features flagged (share) |",
        "|---|---:|---:|---|---:|---|",
    ]
    for r in results:
        flagged = ", ".join(f"{n} {s:.1%}" for n, s in r.flag_rate.items() if s > 0) or "none"
        expected = "drift" if r.expected_drift else "no drift"
        lines.append(
            f"| {r.scenario} | {r.rows:,} | {r.repeats} | {expected} | "
            f"{r.alarm_rate:.1%} | {flagged} |"
        )
    lines += [
        "",
        "| strength sweep (5,000 rows) | repeats | drift called | median PSI: "
        "MonthlyCharges | Contract |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in sweep_results:
        lines.append(
            f"| {r.shift} | {r.repeats} | {r.alarm_rate:.1%} | "
            f"{r.psi_median['MonthlyCharges']:.3f} | {r.psi_median['Contract']:.3f} |"
        )
    lines += ["", "Largest PSI of any feature (median over repeats / maximum):", ""]
    for r in results:
        top = max(r.psi_median, key=r.psi_median.__getitem__)
        worst = max(r.psi_max, key=r.psi_max.__getitem__)
        lines.append(
            f"- {r.scenario}: {top} {r.psi_median[top]:.3f} (median); "
            f"{worst} {r.psi_max[worst]:.3f} (max)"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=200, help="samples per scenario")
    parser.add_argument("--sweep-repeats", type=int, default=50, help="samples per sweep point")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()

    params = load_params(args.params).drift
    reference = load_checked(REAL_DATA)
    start = time.perf_counter()
    results = []
    for i, scenario in enumerate(scenarios()):
        print(f"{scenario.name} ...", file=sys.stderr, flush=True)
        results.append(run_scenario(scenario, reference, params, args.repeats, SEED + i))
    print("strength sweep ...", file=sys.stderr, flush=True)
    sweep_results = sweep(reference, params, args.sweep_repeats, SEED + 100)
    print("timings ...", file=sys.stderr, flush=True)
    times = timings(reference, params)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": params.model_dump(),
        "shifts": {s.name: asdict(s) for s in (STRONG, MILD)},
        "results": [asdict(r) for r in results],
        "sweep": [asdict(r) for r in sweep_results],
        "timings": times,
        "bench_seconds": round(time.perf_counter() - start, 1),
    }
    (args.out / "drift.json").write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(results, sweep_results))
    print()
    print("\n".join(f"- {name}: {value}" for name, value in times.items()))


if __name__ == "__main__":
    main()
