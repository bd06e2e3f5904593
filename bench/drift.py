"""How often `churn drift` cries wolf, and how often it catches a real shift.

Every figure comes from the real data (the CSV files in ``data/raw``, read
and checked as the pipeline reads them), the domain loaded by
`churn.core.domain.load_domain` (``CHURN_DOMAIN`` picks another) and the
rules in ``params.yaml``'s ``drift`` section:

- **false alarms**: samples of the reference's own distribution must not be
  called drift. Two kinds of sample: *bootstrap* (rows drawn with replacement
  from all the data, compared with all of it) and *split* (the data shuffled
  and cut in two, the smaller part compared with the rest: two disjoint
  samples of one population, the situation a monitor really faces);
- **detection**: the same bootstrap samples after the domain's own shift
  (``domain.scenarios.shift``: strength 1.0 is the *strong* shift the check
  must catch, 0.5 the *mild* one), which must be called drift. Every shifted
  sample passes the contract (`churn.monitoring.drift.check`);
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

from churn.core.contract import Contract
from churn.core.data import load
from churn.core.domain import Domain, Scenarios, load_domain
from churn.core.params import DriftParams, load_params
from churn.monitoring.drift import (
    DriftResult,
    build_profile,
    check,
    compare,
    compare_counts,
    count,
)

REPO = Path(__file__).resolve().parent.parent
RAW_DIR = REPO / "data" / "raw"
SEED = 0
SIZES = (200, 2_000, 5_000)
SPLIT_SIZE = 2_000  # or half the data, if it has fewer than twice as many rows
STRENGTHS = {"strong": 1.0, "mild": 0.5}
SWEEP_STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def raw_files(directory: Path) -> list[Path]:
    """The raw data: every CSV in ``directory``, in name order (what `prepare` reads)."""
    files = sorted(directory.glob("*.csv"))
    if not files:
        raise SystemExit(f"no CSV file in {directory}")
    return files


def scenarios_of(domain: Domain) -> Scenarios:
    if domain.scenarios is None:
        raise SystemExit(
            "the domain defines no scenarios: the detection rows need "
            "Domain(scenarios=Scenarios(shift=..., shifted_features=...))"
        )
    return domain.scenarios


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "bootstrap" or "split"
    rows: int
    strength: float  # of the domain's shift; 0: none
    expected_drift: bool


@dataclass
class ScenarioResult:
    scenario: str
    kind: str
    rows: int
    strength: float
    expected_drift: bool
    repeats: int
    alarm_rate: float
    flag_rate: dict[str, float]  # per feature: share of repeats where it drifted
    psi_median: dict[str, float]
    psi_p95: dict[str, float]
    psi_max: dict[str, float]


def run_scenario(
    scenario: Scenario,
    reference: pd.DataFrame,
    params: DriftParams,
    domain: Domain,
    *,
    repeats: int,
    seed: int,
) -> ScenarioResult:
    contract = domain.contract
    shift = scenarios_of(domain).shift
    rng = np.random.default_rng(seed)
    whole = build_profile(reference, params.numeric_bins, contract=contract)
    results: list[DriftResult] = []
    for _ in range(repeats):
        if scenario.kind == "bootstrap":
            sample = reference.iloc[rng.integers(0, len(reference), scenario.rows)]
            profile = whole
        else:
            order = rng.permutation(len(reference))
            sample = reference.iloc[order[: scenario.rows]]
            rest = reference.iloc[order[scenario.rows :]]
            profile = build_profile(rest, params.numeric_bins, contract=contract)
        current = shift(sample, rng, scenario.strength) if scenario.strength else sample
        check(current, scenario.name, contract=contract)  # the shift keeps every contract rule
        results.append(compare_counts(profile, count(profile, current), params))
    names = [f.feature for f in results[0].features]
    psi = {n: [r.features[i].psi for r in results] for i, n in enumerate(names)}
    flags = {n: [r.features[i].drifted for r in results] for i, n in enumerate(names)}
    return ScenarioResult(
        scenario=scenario.name,
        kind=scenario.kind,
        rows=scenario.rows,
        strength=scenario.strength,
        expected_drift=scenario.expected_drift,
        repeats=repeats,
        alarm_rate=sum(r.drift for r in results) / repeats,
        flag_rate={n: sum(v) / repeats for n, v in flags.items()},
        psi_median={n: float(np.median(v)) for n, v in psi.items()},
        psi_p95={n: float(np.quantile(v, 0.95)) for n, v in psi.items()},
        psi_max={n: max(v) for n, v in psi.items()},
    )


def split_size(reference: pd.DataFrame) -> int:
    return min(SPLIT_SIZE, len(reference) // 2)


def scenarios(reference: pd.DataFrame) -> list[Scenario]:
    found = [Scenario(f"null bootstrap {n}", "bootstrap", n, 0.0, False) for n in SIZES]
    split = split_size(reference)
    found.append(Scenario(f"null split {split}", "split", split, 0.0, False))
    for name, strength in STRENGTHS.items():
        found += [Scenario(f"{name} shift {n}", "bootstrap", n, strength, True) for n in SIZES]
    return found


def sweep(
    reference: pd.DataFrame, params: DriftParams, domain: Domain, repeats: int, seed: int
) -> list[ScenarioResult]:
    """Detection rate at the largest sample size as the shift grows from none to strong."""
    rows = max(SIZES)
    out = []
    for strength in SWEEP_STRENGTHS:
        scenario = Scenario(
            f"sweep {strength:.0%} of strong", "bootstrap", rows, strength, strength > 0
        )
        out.append(run_scenario(scenario, reference, params, domain, repeats=repeats, seed=seed))
    return out


def timings(reference: pd.DataFrame, params: DriftParams, domain: Domain) -> dict[str, float]:
    """Milliseconds, best of several runs, for each layer of the API and the CLI."""
    contract = domain.contract
    rng = np.random.default_rng(SEED)
    rows = max(SIZES)
    sample = reference.iloc[rng.integers(0, len(reference), rows)]
    current = scenarios_of(domain).shift(sample, rng, STRENGTHS["strong"])
    profile = build_profile(reference, params.numeric_bins, contract=contract)
    counts = count(profile, current)

    def clock(action: Callable[[], object], runs: int = 20) -> float:
        """Best of ``runs``, in seconds."""
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            action()
            seconds.append(time.perf_counter() - start)
        return min(seconds)

    feature = profile.features[0]
    first = current[feature.name].iloc[0]
    value = float(first) if feature.kind == "numeric" else str(first)
    ms = {
        "compare_ms": lambda: compare(reference, current, params, contract=contract),
        "build_profile_ms": lambda: build_profile(
            reference, params.numeric_bins, contract=contract
        ),
        "check_ms": lambda: check(current, "current", contract=contract),
        "count_ms": lambda: count(profile, current),
        "compare_counts_ms": lambda: compare_counts(profile, counts, params),
    }
    found = {name: round(clock(action) * 1e3, 2) for name, action in ms.items()}
    found["bin_index_one_value_us"] = round(clock(lambda: feature.bin_index(value), 1000) * 1e6, 2)
    command = Path(sys.executable).with_name("churn")
    if not command.is_file():
        return found
    with tempfile.TemporaryDirectory(prefix="churn-drift-") as tmp:
        reference_csv, current_csv = Path(tmp) / "reference.csv", Path(tmp) / "current.csv"
        reference.to_csv(reference_csv, index=False)
        unlabelled = [contract.id.name, contract.label.name]
        current.drop(columns=unlabelled, errors="ignore").to_csv(current_csv, index=False)
        base = [str(command), "drift", "--reference", str(reference_csv)]
        base += ["--current", str(current_csv)]
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


def markdown(
    results: list[ScenarioResult], sweep_results: list[ScenarioResult], shifted: tuple[str, ...]
) -> str:
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
    rows = sweep_results[0].rows if sweep_results else max(SIZES)
    medians = " | ".join(f"median PSI {name}" for name in shifted)
    lines += [
        "",
        f"| strength sweep ({rows:,} rows) | repeats | drift called | {medians} |",
        "|---|---:|---:|" + "---:|" * len(shifted),
    ]
    for r in sweep_results:
        psis = " | ".join(f"{r.psi_median[name]:.3f}" for name in shifted)
        lines.append(f"| {r.strength:.0%} of strong | {r.repeats} | {r.alarm_rate:.1%} | {psis} |")
    lines += ["", "Largest PSI of any feature (median over repeats / maximum):", ""]
    for r in results:
        top = max(r.psi_median, key=r.psi_median.__getitem__)
        worst = max(r.psi_max, key=r.psi_max.__getitem__)
        lines.append(
            f"- {r.scenario}: {top} {r.psi_median[top]:.3f} (median); "
            f"{worst} {r.psi_max[worst]:.3f} (max)"
        )
    return "\n".join(lines)


def load_reference(directory: Path, domain: Domain) -> pd.DataFrame:
    """All the raw data, cleaned and checked: the reference every sample is drawn from."""
    files = raw_files(directory)
    frame = load(files, domain)
    check(frame, ", ".join(str(p) for p in files), contract=domain.contract)
    return frame.reset_index(drop=True)


def describe(contract: Contract, scenarios: Scenarios) -> dict[str, object]:
    return {
        "title": contract.title,
        "features": len(contract.feature_names),
        "shifted_features": list(scenarios.shifted_features),
        "strengths": STRENGTHS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=200, help="samples per scenario")
    parser.add_argument("--sweep-repeats", type=int, default=50, help="samples per sweep point")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--raw-dir", type=Path, default=RAW_DIR, help="the raw CSV files")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()

    domain = load_domain()
    scenario_set = scenarios_of(domain)
    params = load_params(args.params).drift
    reference = load_reference(args.raw_dir, domain)
    start = time.perf_counter()
    results = []
    for i, scenario in enumerate(scenarios(reference)):
        print(f"{scenario.name} ...", file=sys.stderr, flush=True)
        results.append(
            run_scenario(scenario, reference, params, domain, repeats=args.repeats, seed=SEED + i)
        )
    print("strength sweep ...", file=sys.stderr, flush=True)
    sweep_results = sweep(reference, params, domain, args.sweep_repeats, SEED + 100)
    print("timings ...", file=sys.stderr, flush=True)
    times = timings(reference, params, domain)
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "params": params.model_dump(),
        "domain": describe(domain.contract, scenario_set),
        "reference_rows": len(reference),
        "results": [asdict(r) for r in results],
        "sweep": [asdict(r) for r in sweep_results],
        "timings": times,
        "bench_seconds": round(time.perf_counter() - start, 1),
    }
    (args.out / "drift.json").write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(results, sweep_results, scenario_set.shifted_features))
    print()
    print(f"reference: {len(reference):,} rows")
    print("\n".join(f"- {name}: {value}" for name, value in times.items()))


if __name__ == "__main__":
    main()
