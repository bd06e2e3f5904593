"""The BLAS kernels the pipeline pins for byte-identical outputs across x86-64 CPUs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from churn.core.blas import CORETYPE_VARIABLE, KERNELS, cpu_flags, pin_kernels

if TYPE_CHECKING:
    from pathlib import Path

AVX2 = frozenset({"sse2", "avx", "avx2", "fma"})


def test_x86_64_with_avx2_gets_the_pinned_kernels() -> None:
    environ: dict[str, str] = {}
    assert pin_kernels(environ, machine="x86_64", flags=AVX2) == KERNELS
    assert environ == {CORETYPE_VARIABLE: KERNELS}


def test_a_choice_already_made_is_kept() -> None:
    environ = {CORETYPE_VARIABLE: "SkylakeX"}
    assert pin_kernels(environ, machine="x86_64", flags=AVX2) == "SkylakeX"
    assert environ == {CORETYPE_VARIABLE: "SkylakeX"}


def test_other_machines_are_left_alone() -> None:
    for machine, flags in (("arm64", AVX2), ("aarch64", AVX2), ("x86_64", frozenset({"sse2"}))):
        environ: dict[str, str] = {}
        assert pin_kernels(environ, machine=machine, flags=flags) is None
        assert environ == {}


def test_cpu_flags_from_proc_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\nbugs\t: none\n")
    assert cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "fma"}
    assert cpu_flags(tmp_path / "missing") == frozenset()
