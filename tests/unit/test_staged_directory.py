"""Crash-safe model writes: the new folder replaces the old one only when whole."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from churn.pipeline.train import staged_directory

if TYPE_CHECKING:
    from pathlib import Path


def _previous(tmp_path: Path) -> Path:
    target = tmp_path / "models"
    target.mkdir()
    (target / "model.bin").write_text("previous")
    return target


def test_a_complete_write_replaces_the_folder(tmp_path: Path) -> None:
    target = _previous(tmp_path)
    with staged_directory(target) as staging:
        (staging / "model.bin").write_text("new")
        assert (target / "model.bin").read_text() == "previous"  # untouched until the end
    assert (target / "model.bin").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]  # no staging left


def test_a_failed_write_leaves_the_previous_folder(tmp_path: Path) -> None:
    target = _previous(tmp_path)
    with pytest.raises(RuntimeError), staged_directory(target) as staging:
        (staging / "model.bin").write_text("half")
        raise RuntimeError("killed halfway")
    assert (target / "model.bin").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]


def test_a_first_write_creates_the_folder(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "models"
    with staged_directory(target) as staging:
        (staging / "model.bin").write_text("first")
    assert (target / "model.bin").read_text() == "first"
    assert oct(target.stat().st_mode & 0o777) == "0o755"


def test_the_leftovers_of_a_killed_write_are_cleared(tmp_path: Path) -> None:
    """SIGKILL runs no `finally`: a staging folder stays, or (killed between the
    two renames) only the previous folder under its temporary name."""
    target = _previous(tmp_path)
    (tmp_path / ".models.new-killed").mkdir()
    target.rename(tmp_path / ".models.old")
    with pytest.raises(RuntimeError), staged_directory(target):
        assert (target / "model.bin").read_text() == "previous"  # put back first
        raise RuntimeError("refused")
    assert (target / "model.bin").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models"]
