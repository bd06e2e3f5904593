"""`make adopt`: a table in, the project's domain room, raw data and gate replaced.

Everything is decided and checked before anything is written: the drafted
contract must load, the table must pass its own validation suite, and the
default model must cross-validate on it. Only then are the files replaced,
the room as a whole (built beside the old one and swapped in). A problem
before that point leaves the project exactly as it was.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from churn.adopt import draft
from churn.adopt.baseline import Baseline, measure
from churn.adopt.profile import AdoptError, Options, Profile, profile
from churn.core.contract import Contract
from churn.core.data import clean
from churn.core.domain import Domain
from churn.core.errors import ContractError
from churn.core.params import Params, ParamsError, load_params
from churn.core.repairs import tidy
from churn.core.yamlio import parse_yaml_model

ROOM = Path("src") / "churn" / "domain"
RAW = Path("data") / "raw"
PARAMS = Path("params.yaml")
METRICS = Path("metrics.json")
"""The example's metrics: removed, so the first pull request after adopting is judged by
the new gate's limits alone (a baseline without metrics is a first run), not against
another table's model."""
GATE_BLOCK = re.compile(r"(?:^#[^\n]*\n)*^gate:[^\n]*\n(?:^[ \t]+[^\n]*\n|^[ \t]*#[^\n]*\n)*", re.M)


@dataclass(frozen=True)
class Adoption:
    profile: Profile
    contract: Contract
    baseline: Baseline
    data_file: Path  # relative to the project
    files: dict[Path, str]  # relative path -> text, the room and the rest


def plan(
    project: Path,
    data: Path,
    *,
    label: str,
    positive: str,
    id_column: str | None = None,
    options: Options | None = None,
) -> Adoption:
    """Everything `apply` would write, decided and checked; `AdoptError` if it cannot be."""
    options = options or Options()
    for needed in (ROOM / "__init__.py", PARAMS, Path("dvc.yaml")):
        if not (project / needed).is_file():
            raise AdoptError(f"{project}: not this template's project (no {needed})")
    found = profile(data, label=label, positive=positive, id_column=id_column, options=options)
    data_file = RAW / f"{re.sub(r'[^0-9A-Za-z._-]+', '_', data.stem)}.csv"
    contract_text = draft.contract_yaml(found, options, data_file.as_posix())
    try:
        contract = parse_yaml_model(contract_text, "the drafted contract", Contract, ContractError)
    except ContractError as exc:
        raise AdoptError(f"{data}: the table gives no valid contract ({exc})") from None
    domain = Domain(contract, repair=_repair(found))
    frame = clean(found.table, domain)
    from churn.pipeline.validation import validate

    report = validate(frame, [str(data)], contract)
    if not report.success:
        first = report.render().strip().splitlines()
        raise AdoptError(f"{data}: fails its own drafted contract: {' '.join(first[:3])}")
    params = _params_with_gate_of(project)
    baseline = measure(frame, contract, params)
    params_text = GATE_BLOCK.sub(
        lambda _: draft.gate_yaml(baseline), (project / PARAMS).read_text(encoding="utf-8"), 1
    )
    try:
        parse_yaml_model(params_text, str(PARAMS), Params, ParamsError)
    except ParamsError as exc:
        raise AdoptError(f"params.yaml: the new gate does not fit it ({exc})") from None
    files = {
        ROOM / "__init__.py": draft.INIT_PY,
        ROOM / "contract.yaml": contract_text,
        ROOM / "repairs.py": draft.repairs_py(found),
        ROOM / "scenarios.py": draft.scenarios_py(found),
        ROOM / "tests" / "__init__.py": '"""This room\'s own tests: what is true of its data '
        'and of a model trained on it."""\n',
        ROOM / "tests" / "conftest.py": draft.tests_conftest_py(data_file.as_posix()),
        ROOM / "tests" / "test_data.py": draft.TESTS_DATA_PY,
        ROOM / "tests" / "test_model.py": draft.TESTS_MODEL_PY,
        RAW / "README.md": draft.data_readme(found, data_file.as_posix()),
        PARAMS: params_text,
    }
    return Adoption(found, contract, baseline, data_file, files)


def _repair(found: Profile):  # type: ignore[no-untyped-def]
    dropped = tuple(d.name for d in found.dropped)
    return lambda frame: tidy(frame, blanks=found.blanks, drop=dropped)


def _params_with_gate_of(project: Path) -> Params:
    try:
        params = load_params(project / PARAMS)
    except ParamsError as exc:
        raise AdoptError(str(exc)) from None
    text = (project / PARAMS).read_text(encoding="utf-8")
    if len(GATE_BLOCK.findall(text)) != 1:
        raise AdoptError(f"{project / PARAMS}: no single top-level `gate:` block to replace")
    return params


def apply(project: Path, adoption: Adoption) -> None:
    """Write ``adoption`` into ``project``: the room swapped whole, the raw data replaced."""
    room = project / ROOM
    staging = Path(tempfile.mkdtemp(prefix=".domain-", dir=room.parent))
    try:
        for relative, text in adoption.files.items():
            if relative.is_relative_to(ROOM):
                target = staging / relative.relative_to(ROOM)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
        raw_dir = project / RAW
        raw_dir.mkdir(parents=True, exist_ok=True)
        data_target = project / adoption.data_file
        new_raw = raw_dir / f".{adoption.data_file.name}.adopting"
        if adoption.profile.id.generated:
            adoption.profile.table.to_csv(new_raw, index=False, lineterminator="\n")
        else:
            shutil.copyfile(adoption.profile.source, new_raw)
        old_room = room.with_name(".domain-old")
        shutil.rmtree(old_room, ignore_errors=True)
        room.rename(old_room)
        staging.rename(room)
        shutil.rmtree(old_room)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for old in raw_dir.glob("*.csv"):
        old.unlink()
    new_raw.rename(data_target)
    for relative, text in adoption.files.items():
        if not relative.is_relative_to(ROOM):
            (project / relative).write_text(text, encoding="utf-8")
    (project / METRICS).unlink(missing_ok=True)


def summary(adoption: Adoption) -> str:
    """What `make adopt` decided and what a person should review, for the terminal."""
    found, base = adoption.profile, adoption.baseline
    label = found.label
    id_text = (
        f"none in the table: rows numbered as {found.id.name}"
        if found.id.generated
        else f"{found.id.name} ({found.id.pattern})"
    )
    lines = [
        f"adopted {found.source} as {adoption.data_file}: {found.rows} rows",
        f"  label     {label.name}, positive {label.positive!r} "
        f"({100 * label.rate:.1f}% of rows, band {label.band[0]:g}..{label.band[1]:g})",
        f"  id        {id_text}",
    ]
    for column in found.numeric:
        blank = f", {100 * column.missing_share:.1f}% blank" if column.missing_share else ""
        lines.append(
            f"  numeric   {column.name}: {column.kind} {column.min_value:g}..{column.max_value:g}"
            f"{blank}"
        )
    for column in found.categorical:
        blank = f", {100 * column.missing_share:.1f}% blank" if column.missing_share else ""
        lines.append(f"  category  {column.name}: {len(column.levels)} levels{blank}")
    lines += [f"  left out  {d.name}: {d.reason}" for d in found.dropped]
    if found.blanks:
        lines.append(f"  blanks    cells {', '.join(map(repr, found.blanks))} read as blank")
    lines.append(f"  gate      {base.folds}-fold CV of the default model:")
    for metric in base.metrics:
        rule = base.rules[metric]
        sign = ">=" if rule.higher_is_better else "<="
        lines.append(
            f"            {metric} {sign} {rule.limit:.3f} (CV {base.means[metric]:.3f} "
            f"+- {base.stds[metric]:.3f}), max regression {rule.max_regression:.3f}"
        )
    notes = [c for c in found.columns if c.note]
    review = [
        (f"{ROOM}/contract.yaml", "ranges, levels, max_missing; add the rules your data obeys"),
        *((f"  {c.name}", c.note) for c in notes),
        (f"{ROOM}/scenarios.py", "a shift your business can see; your domain's VOCABULARY"),
        (f"{ROOM}/tests/", "what you know about your data and model, as tests"),
        (f"{RAW}/README.md", "where the table comes from"),
        (str(PARAMS), "the gate (set from the baseline above)"),
    ]
    width = max(len(path) for path, _ in review)
    lines += ["", "review, then commit:"]
    lines += [f"  {path:<{width}}  {what}" for path, what in review]
    lines += [
        "",
        "next: make demo (the pipeline on the new data), make test, then commit everything,",
        "      dvc.lock and metrics.json included, to main itself: until it lands, main's",
        "      gate is the example's (docs/adopt.md, Landing the adoption).",
    ]
    return "\n".join(lines)
