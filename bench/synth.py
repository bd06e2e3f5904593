"""Write synthetic records of the domain's contract as a raw CSV file.

The real file is too small to show how the pipeline grows, and a fork may
want to try the pipeline before its own data arrives. `churn.pipeline.synth.generate`
draws fresh, valid, labelled records from the data contract alone (ids in
the contract's pattern, numbers in range, levels, cross-field rules, a label
with signal and a positive rate inside the contract's range); this script
writes them where `churn prepare` reads raw data.

    python bench/synth.py --rows 100000 --out /tmp/raw/records.csv
    python bench/synth.py --rows 3000 --domain tests/domains/synthetic --out data/raw/loans.csv

Without ``--domain`` it uses the domain `load_domain` finds (``$CHURN_DOMAIN``,
else the package's own room).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from churn.core.domain import load_domain
from churn.core.errors import ContractError
from churn.pipeline.synth import generate


def write(out: Path, rows: int, seed: int, domain: str | None = None) -> float:
    """Generate ``rows`` records of the domain's contract into ``out``; seconds taken."""
    start = time.perf_counter()
    frame = generate(load_domain(domain).contract, rows, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True, help="number of records")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same file")
    parser.add_argument("--out", type=Path, required=True, help="CSV file to write")
    parser.add_argument("--domain", help="a domain module or folder (default: $CHURN_DOMAIN)")
    args = parser.parse_args()
    try:
        seconds = write(args.out, args.rows, args.seed, args.domain)
    except ContractError as exc:
        sys.exit(f"error: {exc}")
    print(f"wrote {args.rows:,} records to {args.out} in {seconds:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
