"""`churn adopt`: a table in, a contract that describes it, or exit 2 and nothing changed.

Tables are generated from the suite's synthetic domain, so every expectation
is read from that contract (which columns are numeric, their levels) and
none names a column; bad tables are that table with one thing broken.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from churn.adopt.apply import apply, plan
from churn.adopt.baseline import gate_rule
from churn.adopt.profile import (
    MIN_ROWS,
    AdoptError,
    Profile,
    generated_id_name,
    id_pattern,
    profile,
)
from churn.cli.app import app
from churn.core.contract import Contract, load_contract
from churn.core.data import clean
from churn.core.domain import Domain
from churn.core.repairs import tidy
from churn.core.scenarios import ContractShift
from churn.pipeline.synth import generate
from churn.pipeline.validation import validate
from tests.support.domains import synthetic_domain
from tests.support.paths import REPO

ROWS = 600
PROJECT_FILES = ("params.yaml", "dvc.yaml", "src/churn/domain", "data/raw/README.md")


@pytest.fixture(scope="module")
def source() -> Contract:
    return synthetic_domain().contract


@pytest.fixture(scope="module")
def records(source: Contract) -> pd.DataFrame:
    """Clean records of the synthetic domain, as text (a CSV's cells)."""
    return generate(source, ROWS, seed=3).astype(str)


@pytest.fixture
def write(tmp_path: Path) -> Callable[[pd.DataFrame], Path]:
    def to_csv(frame: pd.DataFrame, name: str = "table.csv") -> Path:
        path = tmp_path / name
        frame.to_csv(path, index=False)
        return path

    return to_csv


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The files `churn adopt` reads and replaces, copied from this project."""
    root = tmp_path / "project"
    for name in PROJECT_FILES:
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, target)
    return root


def tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def adopt_cli(project: Path, data: Path, source: Contract, *extra: str, **overrides: str):  # type: ignore[no-untyped-def]
    args = {
        "--data": str(data),
        "--label": source.label.name,
        "--positive": source.label.positive,
        "--project": str(project),
    } | overrides
    flat = [part for pair in args.items() for part in pair]
    return CliRunner().invoke(app, ["adopt", *flat, *extra])


def profiled(path: Path, source: Contract) -> Profile:
    """``path`` profiled with the source domain's label, positive level and id."""
    return profile(
        path, label=source.label.name, positive=source.label.positive, id_column=source.id.name
    )


# -- what the profile decides ----------------------------------------------------------


def test_each_column_gets_the_kind_and_levels_of_the_domain_it_came_from(
    records: pd.DataFrame, source: Contract, write: Callable[..., Path]
) -> None:
    found = profiled(write(records), source)

    kinds = {c.name: c.kind for c in found.columns}
    for column in source.numeric:
        assert kinds[column.name] == column.kind, column.name
    for categorical in source.categorical:
        adopted = next(c for c in found.columns if c.name == categorical.name)
        assert adopted.kind == "categorical"
        assert set(adopted.levels) <= set(categorical.levels)
    assert found.label.positive == source.label.positive
    assert found.label.negative in source.label.levels
    assert found.id.name == source.id.name and not found.id.generated


def test_numeric_ranges_hold_every_observed_value_with_the_margin(
    records: pd.DataFrame, source: Contract, write: Callable[..., Path]
) -> None:
    found = profiled(write(records), source)

    for column in found.numeric:
        values = records[column.name].astype(float)
        span = values.max() - values.min()
        assert column.min_value <= values.min() - 0.09 * span or column.min_value == 0
        assert column.max_value >= values.max() + 0.09 * span
        if values.min() >= 0:
            assert column.min_value >= 0


def test_the_id_pattern_matches_every_id_and_is_ascii(
    records: pd.DataFrame, source: Contract
) -> None:
    ids = records[source.id.name]
    pattern = id_pattern(ids)

    assert pattern.isascii()
    assert ids.str.fullmatch(pattern).all()
    assert not pd.Series(["", "é" * 3, " " + ids.iloc[0]]).str.fullmatch(pattern).any()


def test_without_an_id_the_rows_are_numbered_in_a_new_first_column(
    records: pd.DataFrame, source: Contract, write: Callable[..., Path]
) -> None:
    path = write(records.drop(columns=[source.id.name]), "my table.csv")

    found = profile(path, label=source.label.name, positive=source.label.positive)

    assert found.id.generated
    assert found.id.name == generated_id_name(path, set(records.columns))
    assert found.table.columns[0] == found.id.name
    assert found.table[found.id.name].is_unique
    assert found.table[found.id.name].str.fullmatch(found.id.pattern).all()
    ids = found.table[found.id.name]
    complete = found.table[[c.name for c in found.columns]].notna().all(axis=1).to_numpy()
    assert found.example[found.id.name] == ids.iloc[int(np.argmax(complete))]


def test_blanks_tokens_flags_and_useless_columns(
    records: pd.DataFrame, source: Contract, write: Callable[..., Path]
) -> None:
    table = records.copy()
    numeric = source.numeric[0].name
    rng = np.random.default_rng(0)
    blank = rng.random(len(table)) < 0.08
    table.loc[blank, numeric] = "?"
    table["flag_column"] = np.where(rng.random(len(table)) < 0.3, "1", "0")
    table["empty_column"] = ""
    table["constant_column"] = "same"
    table["free_text"] = [f"note {i}" for i in range(len(table))]
    table["with_units"] = [f"{i:,} $" for i in rng.integers(500, 5000, len(table))]
    table.loc[table.index[0], source.categorical[0].name] = (
        f"  {records[source.categorical[0].name].iloc[0]} "
    )
    table.loc[table.index[1], numeric] = " ? "

    found = profiled(write(table), source)

    column = next(c for c in found.columns if c.name == numeric)
    assert found.blanks == ("?",)
    share = (blank | (np.arange(len(table)) == 1)).mean()
    assert column.missing_share == pytest.approx(share)
    assert column.max_missing == pytest.approx(np.ceil(share * 1.5 * 100) / 100)
    flag = next(c for c in found.columns if c.name == "flag_column")
    assert (flag.kind, flag.levels) == ("categorical", ("0", "1"))
    dropped = {d.name: d.reason for d in found.dropped}
    assert set(dropped) == {"empty_column", "constant_column", "free_text", "with_units"}
    assert "separators or units" in dropped["with_units"]
    first = next(c for c in found.columns if c.name == source.categorical[0].name)
    assert set(first.levels) <= set(source.categorical[0].levels)  # stripped


# -- bad input: one line, exit 2, nothing changed ----------------------------------------


def _bad_tables(records: pd.DataFrame, source: Contract) -> dict[str, pd.DataFrame | None]:
    three = records.copy()
    three.loc[three.index[:5], source.label.name] = "a third value"
    duplicated = records.copy()
    duplicated.loc[duplicated.index[1], source.id.name] = duplicated[source.id.name].iloc[0]
    return {
        "no such file": None,
        "too few rows": records.head(MIN_ROWS - 1),
        "three label values": three,
        "duplicate ids": duplicated,
        "no feature columns": records[[source.id.name, source.label.name]],
    }


@pytest.mark.parametrize(
    "case",
    [
        "no such file",
        "too few rows",
        "three label values",
        "duplicate ids",
        "no feature columns",
        "no label column",
        "no positive value",
        "no id column",
        "a directory",
        "not a CSV",
    ],
)
def test_a_table_that_cannot_be_adopted_gets_one_line_and_exit_2(  # noqa: PLR0917
    case: str,
    records: pd.DataFrame,
    source: Contract,
    project: Path,
    tmp_path: Path,
    write: Callable[..., Path],
) -> None:
    tables = _bad_tables(records, source)
    overrides: dict[str, str] = {}
    frame = tables.get(case, records)
    path = tmp_path / "missing.csv" if frame is None else write(frame)
    if case == "no label column":
        overrides["--label"] = "not_a_column"
    elif case == "no positive value":
        overrides["--positive"] = "not a value"
    elif case == "no id column":
        overrides["--id"] = "not_a_column"
    elif case == "a directory":
        path = tmp_path
    elif case == "not a CSV":
        path.write_bytes(bytes(range(256)) * 4)
    if case not in ("no id column",):
        overrides.setdefault("--id", source.id.name)
    before = tree_digest(project)

    result = adopt_cli(project, path, source, **overrides)

    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert tree_digest(project) == before


def test_a_blank_column_is_left_out_with_a_warning_not_an_error(
    records: pd.DataFrame, source: Contract, project: Path, write: Callable[..., Path]
) -> None:
    path = write(records.assign(empty_column=""))

    result = adopt_cli(project, path, source, **{"--id": source.id.name})

    assert result.exit_code == 0, result.output
    assert "warning: empty_column left out: blank in every row" in result.output


# -- what adopt writes --------------------------------------------------------------------


def test_adopting_writes_a_room_that_loads_and_validates_the_table(
    records: pd.DataFrame, source: Contract, project: Path, write: Callable[..., Path]
) -> None:
    # Columns in another order than the contract's (categorical before numeric).
    table = records.drop(columns=[source.id.name])
    path = write(table[list(reversed(table.columns))], "applications.csv")

    adoption = plan(project, path, label=source.label.name, positive=source.label.positive)
    apply(project, adoption)

    contract = load_contract(project / "src/churn/domain/contract.yaml")
    assert contract == adoption.contract
    assert list(contract.example) == [contract.id.name, *contract.feature_names]
    assert [p.name for p in (project / "data/raw").glob("*.csv")] == ["applications.csv"]
    raw = pd.read_csv(project / "data/raw/applications.csv", dtype=str, keep_default_na=False)
    report = validate(clean(raw, Domain(contract)), ["adopted"], contract)
    assert report.success, report.render()
    assert (
        not (project / "src/churn/domain/tests/test_model.py").read_text().count(source.label.name)
    )
    gate = (project / "params.yaml").read_text()
    for metric, rule in adoption.baseline.rules.items():
        assert f"{metric}: {{limit: {rule.limit:.3f}" in gate


def test_adopting_the_same_table_twice_gives_the_same_files(
    records: pd.DataFrame, source: Contract, tmp_path: Path, write: Callable[..., Path]
) -> None:
    path = write(records.drop(columns=[source.id.name]))
    digests = []
    for name in ("one", "two"):
        root = tmp_path / name
        for item in PROJECT_FILES:
            target = root / item
            target.parent.mkdir(parents=True, exist_ok=True)
            copy = shutil.copytree if (REPO / item).is_dir() else shutil.copy2
            copy(REPO / item, target)
        apply(root, plan(root, path, label=source.label.name, positive=source.label.positive))
        digests.append(tree_digest(root / "src/churn/domain") + tree_digest(root / "data"))

    assert digests[0] == digests[1]


# -- the pieces the drafted room uses ---------------------------------------------------


def test_gate_rules_sit_three_spreads_on_the_bad_side() -> None:
    higher = gate_rule(0.8, 0.01, higher_is_better=True)
    lower = gate_rule(0.15, 0.002, higher_is_better=False)

    assert (higher.limit, higher.max_regression) == (0.77, 0.01)
    assert (lower.limit, lower.max_regression) == (0.156, 0.005)


def test_tidy_strips_blanks_and_drops_and_is_idempotent() -> None:
    frame = pd.DataFrame({"a": [" x ", "?", ""], "b": ["1", "2", "3"]}, dtype=object)

    once = tidy(frame, blanks=("?",), drop=("b",))

    assert list(once.columns) == ["a"]
    assert once["a"].iloc[0] == "x" and once["a"].iloc[1:].isna().all()
    pd.testing.assert_frame_equal(tidy(once, blanks=("?",), drop=("b",)), once)
    assert frame["a"].iloc[0] == " x "


def test_the_generic_shift_keeps_records_valid_and_moves_its_features() -> None:
    domain = synthetic_domain()
    contract = domain.contract
    ruled = {c for r in contract.implications for c in (r.when, *r.then)}
    categorical = next(c for c in contract.categorical if c.name not in ruled)
    numeric = contract.numeric[0].name
    shift = ContractShift(contract, numeric, categorical.name, categorical.levels[-1])
    frame = clean(generate(contract, 2000, seed=1).astype(str), domain)

    still = shift(frame, np.random.default_rng(0), 0.0)
    moved = shift(frame, np.random.default_rng(0), 1.0)

    pd.testing.assert_frame_equal(still, frame)
    assert validate(moved, ["shifted"], contract).success
    assert (moved[categorical.name] == categorical.levels[-1]).mean() > (
        frame[categorical.name] == categorical.levels[-1]
    ).mean() + 0.2
    assert (
        moved[contract.numeric[0].name].astype(float).mean()
        > frame[contract.numeric[0].name].astype(float).mean()
    )
    with pytest.raises(Exception, match="not a level"):
        ContractShift(contract, None, categorical.name, "no such level")


def test_an_adopt_error_names_the_file(records: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(AdoptError, match=str(tmp_path / "nothing.csv")):
        profile(tmp_path / "nothing.csv", label="label", positive="yes")
