"""Where the project's files are, found rather than named (a fork's data has its own name)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RAW_DIR = REPO / "data" / "raw"
PARAMS = REPO / "params.yaml"


def raw_files() -> list[Path]:
    """The raw data: every CSV in data/raw, in name order (what `prepare` reads)."""
    files = sorted(RAW_DIR.glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"no CSV file in {RAW_DIR}")
    return files
