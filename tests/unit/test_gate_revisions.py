"""`churn gate`, `churn report` and `churn check-reproduced` against real Git revisions.

A small repository holds the project's params.yaml, dvc.yaml, metrics and
plot data as the base branch; the "pull request" then changes the working
tree. No model and no DVC run are needed: the gate and the report read
both revisions from Git, the way CI runs them after `dvc repro`.
"""

from __future__ import annotations

import json
import shutil
from typing import TYPE_CHECKING

import pytest
import yaml

from churn.core.params import Params, load_params
from churn.release import reproduce
from churn.release.plots import PlotSpec, resample, specs
from churn.release.steps import PIPELINE, STEPS_FILE, Step, read_steps
from tests.support.cli import churn
from tests.support.git import git
from tests.support.params import HEADROOM, at_limit, comfortable, limit_problem, write_params
from tests.support.paths import REPO

if TYPE_CHECKING:
    from pathlib import Path

BASE = "main"


def _commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


@pytest.fixture
def base(tmp_path: Path, params: Params) -> Path:
    """A repository whose `main` has the project's params, dvc.yaml, plot data and
    comfortable metrics (the gate's own numbers, so any fork's gate works)."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", BASE)
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    shutil.copy(REPO / "dvc.yaml", root / "dvc.yaml")
    shutil.copytree(REPO / "plots", root / "plots", ignore=shutil.ignore_patterns("images"))
    (root / "metrics.json").write_text(json.dumps(comfortable(params.gate)))
    _commit(root, "main")
    git(root, "checkout", "-qb", "change")
    return root


def _metrics(root: Path, values: dict[str, float]) -> None:
    (root / "metrics.json").write_text(json.dumps(values))


def test_a_crippled_model_fails_the_gate_and_gets_a_report(base: Path, params: Params) -> None:
    crippled = at_limit(params.gate, -HEADROOM)
    _metrics(base, crippled)
    gate = churn("gate", "--baseline", BASE, cwd=base)
    assert gate.returncode == 1, gate.stderr
    assert gate.stdout.splitlines()[0] == f"GATE FAILED (against {BASE})"
    for metric, rule in params.gate.items():
        assert limit_problem(metric, rule, crippled[metric]) in gate.stdout
    report = churn("report", "--baseline", BASE, cwd=base)
    assert report.returncode == 0, report.stderr
    for name in ("pr.md", "pr-inline.md"):
        text = (base / "reports" / name).read_text()
        assert "**Gate: ❌ failed**" in text
        assert "No model: the pipeline did not produce one." in text


def test_a_change_cannot_loosen_the_gate_that_judges_it(base: Path, params: Params) -> None:
    crippled = at_limit(params.gate, -HEADROOM)
    _metrics(base, crippled)
    loosened = {
        metric: rule.model_copy(update={"limit": 0.0 if rule.higher_is_better else 1e9})
        for metric, rule in params.gate.items()
    }
    write_params(params.model_copy(update={"gate": loosened}), base / "params.yaml")
    _commit(base, "loosen the gate")
    assert churn("gate", "--baseline", "HEAD", cwd=base).returncode == 0  # its own rules pass
    gate = churn("gate", "--baseline", BASE, cwd=base)
    assert gate.returncode == 1
    assert (
        f"note: this change edits `gate:` in params.yaml; the gate applies {BASE}'s" in gate.stdout
    )
    churn("report", "--baseline", BASE, cwd=base)
    text = (base / "reports" / "pr.md").read_text()
    assert "> **Note:** this change edits `gate:`" in text
    assert "| `gate." in text  # the edited limits are in the parameter table


def test_a_baseline_that_does_not_resolve_fails_closed(base: Path, params: Params) -> None:
    gate = churn("gate", "--baseline", "origin/nowhere", cwd=base)
    assert gate.returncode == 1
    assert "'origin/nowhere' does not resolve to a commit here" in gate.stdout


def test_the_first_pipeline_run_is_held_to_the_limits_and_says_so(
    base: Path, params: Params
) -> None:
    git(base, "rm", "-q", "metrics.json")
    _commit(base, "no metrics yet")
    _metrics(base, comfortable(params.gate))
    gate = churn("gate", "--baseline", "HEAD", cwd=base)
    assert gate.returncode == 0, gate.stdout
    assert "note: first pipeline run: HEAD has no metrics.json" in gate.stdout


def test_failed_steps_fail_the_gate_and_lead_the_report(base: Path, params: Params) -> None:
    steps = base / STEPS_FILE
    steps.parent.mkdir(parents=True)
    steps.write_text(f"{PIPELINE}\tfailed\terror: bad data\nloadtest\tskipped\tno pipeline\n")
    assert read_steps(steps) == [
        Step(PIPELINE, "failed", "error: bad data"),
        Step("loadtest", "skipped", "no pipeline"),
    ]
    assert churn("gate", "--baseline", BASE, cwd=base).returncode == 0  # steps not asked for
    gate = churn("gate", "--baseline", BASE, "--steps", STEPS_FILE, cwd=base)
    assert gate.returncode == 1
    assert "  - pipeline failed: error: bad data" in gate.stdout
    churn("report", "--baseline", BASE, "--steps", STEPS_FILE, cwd=base)
    assert "Not produced: the pipeline failed." in (base / "reports" / "pr.md").read_text()


def test_the_plots_show_the_baseline_beside_the_change(base: Path) -> None:
    assert churn("report", "--baseline", BASE, cwd=base).returncode == 0
    plot_specs = specs(base / "dvc.yaml")
    assert plot_specs, "dvc.yaml defines no plots"
    png = (base / "reports" / "pr.md").read_text()
    inline = (base / "reports" / "pr-inline.md").read_text()
    for spec in plot_specs:
        image = base / "reports" / "plots" / f"{spec.name}.png"
        assert image.read_bytes()[:4] == b"\x89PNG"
        assert f"![{spec.title}](plots/{spec.name}.png)" in png
        assert f"({spec.path}" not in inline  # nothing links a local file
    lines = [s for s in plot_specs if s.kind == "line"]
    assert inline.count("```mermaid") == len(lines)
    assert inline.count(f"grey: `{BASE}`, blue: this change") == len(lines)


def test_the_report_images_are_the_same_bytes_for_the_same_data(base: Path) -> None:
    churn("report", "--baseline", BASE, cwd=base)
    first = {p.name: p.read_bytes() for p in (base / "reports" / "plots").iterdir()}
    churn("report", "--baseline", BASE, cwd=base)
    assert {p.name: p.read_bytes() for p in (base / "reports" / "plots").iterdir()} == first


def test_resampling_a_curve() -> None:
    points = [(0.0, 0.0), (0.5, 1.0), (1.0, 1.0)]
    assert resample(points, [0.0, 0.25, 0.5, 0.75, 1.0, 2.0]) == [0, 0.5, 1, 1, 1, 1]
    assert PlotSpec("p.csv", "t", "bar_horizontal", "v", "k", "v", "k").kind == "bar"


# -- the reproduction check ---------------------------------------------------------------


def _lock(stage_dep: str, out_md5: str) -> bytes:
    lock = {
        "schema": "2.0",
        "stages": {
            "train": {
                "cmd": "train",
                "deps": [{"path": "src", "md5": stage_dep}],
                "outs": [{"path": "metrics.json", "md5": out_md5}],
            }
        },
    }
    return yaml.safe_dump(lock).encode()


def test_a_lock_for_other_inputs_asks_to_repro_and_commit() -> None:
    (line,) = reproduce.lock_differences(_lock("a", "x"), _lock("b", "y"))
    assert line.startswith("dvc.lock: committed for other inputs (code, data or params) of train")
    assert "run `make repro` and commit dvc.lock" in line


def test_other_bytes_from_the_same_inputs_are_named_as_such() -> None:
    (line,) = reproduce.lock_differences(_lock("a", "x"), _lock("a", "y"))
    assert "the same inputs gave other output bytes in train" in line
    assert reproduce.lock_differences(_lock("a", "x"), _lock("a", "x")) == []


def test_check_reproduced_compares_the_working_tree_with_the_commit(base: Path) -> None:
    (base / "dvc.lock").write_bytes(_lock("a", "x"))
    _commit(base, "lock")
    result = churn("check-reproduced", cwd=base)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("REPRODUCED")
    (base / "metrics.json").write_text("{}")  # a tracked output that no longer matches
    result = churn("check-reproduced", cwd=base)
    assert result.returncode == 1
    assert "  - metrics.json: differs from the committed file" in result.stdout
    (base / "dvc.lock").write_bytes(_lock("b", "x"))
    result = churn("check-reproduced", cwd=base)
    assert "committed for other inputs" in result.stdout
    assert "metrics.json" not in result.stdout  # the cause is named, not each consequence


def test_the_fixture_gate_is_the_projects(params: Params) -> None:
    assert load_params(REPO / "params.yaml").gate == params.gate
