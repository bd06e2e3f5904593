"""One set of BLAS kernels on every x86-64 CPU, so the pipeline writes the same bytes.

OpenBLAS (inside numpy's and scipy's wheels) picks its kernels by CPU at
load time, and the kernels round differently: on one machine, a logistic
regression fitted with the Haswell, Sandy Bridge and Prescott kernels gave
three different `model.skops` files, while the thread count (1, 2 or 4) and
numpy's own AVX-512 loops changed nothing. Pinning the Haswell kernels
(AVX2 + FMA, present on every GitHub-hosted runner and on x86-64 CPUs since
2013) makes a laptop's `dvc.lock` the one CI reproduces. arm64 machines
(Apple silicon) run other kernels: their outputs differ in the last bits,
and `churn check-reproduced` says so (docs/ci.md).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

CORETYPE_VARIABLE = "OPENBLAS_CORETYPE"
KERNELS = "Haswell"
NEEDS = frozenset({"avx2", "fma"})


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def pin_kernels(
    environ: dict[str, str] | os._Environ[str] = os.environ,
    machine: str | None = None,
    flags: frozenset[str] | None = None,
) -> str | None:
    """Set ``OPENBLAS_CORETYPE`` (unless already set) before numpy is imported.

    Returns the kernels in force, or None where they are left to OpenBLAS
    (not x86-64, or a CPU without AVX2 and FMA).
    """
    if CORETYPE_VARIABLE in environ:
        return environ[CORETYPE_VARIABLE]
    if (machine or platform.machine()).lower() not in {"x86_64", "amd64"}:
        return None
    if not NEEDS.issubset(cpu_flags() if flags is None else flags):
        return None
    environ[CORETYPE_VARIABLE] = KERNELS
    return KERNELS
