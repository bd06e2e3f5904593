"""The domain room `make adopt` writes: files a person reviews, each saying why it says what.

Every function returns text; nothing here touches the disk (`churn.adopt.apply`
does). The same profile gives the same bytes, so re-running ``make adopt`` on
the same table changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from churn.adopt.baseline import Baseline
from churn.adopt.profile import GENERATED_ID_PATTERN, Column, Options, Profile

Scalar = str | int | float


def _q(value: Scalar) -> str:
    """A YAML scalar: strings always double-quoted (JSON is YAML), so "No" stays text."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    return repr(value)


def _share(value: float) -> str:
    return f"{100 * value:.1f}%"


def contract_yaml(profile: Profile, options: Options, data_file: str) -> str:
    """The drafted ``contract.yaml``: the table's columns, each with the rule that chose it."""
    label, ident = profile.label, profile.id
    lines = [
        f"# The data contract, drafted by `make adopt` from {data_file}",
        f"# ({profile.rows} rows). THIS FILE IS YOURS: review it, tighten it, commit it.",
        "#",
        "# Everything else (validation suite, model features, API request model, MLflow",
        "# signature, drift bins, prediction log) is derived from it. How each entry was",
        "# decided (churn.adopt.profile):",
        "# - numeric: every filled cell reads as a number; `int` when all are whole. The",
        f"#   range is the observed one widened by {options.margin:.0%} of its span on each "
        "side (not",
        "#   below 0 when nothing was negative): narrow it to what your business allows.",
        "# - categorical: text (or a 0/1 flag), levels as observed, sorted. A level the",
        "#   table lacks but the world has must be added, or the API will refuse it.",
        "# - max_missing: the largest share of blank cells allowed, "
        f"{options.missing_slack:g} x the observed",
        "#   share rounded up to a percent. The model imputes blanks; the API accepts null",
        "#   for these columns only; validation fails a file with more.",
        "# - implications: none drafted. Add the rules your data obeys, e.g.",
        "#     {when: has_children, when_value: 'no', then: [young_children], "
        "then_value: 'no', one_way: true}",
        "#   (without `one_way`, `when` holds `when_value` exactly when `then` holds "
        "`then_value`).",
        "",
        f"title: {_q(f'{label.name} prediction')}",
        f"description: {_q(f'Probability that {label.name} is {label.positive}.')}",
        "",
    ]
    if ident.generated:
        lines += [
            f"# The table has no id column: `make adopt` numbered its rows as {ident.name} in",
            "# data/raw (000001, 000002, ...). In production, send your own ids in this",
            "# format; the prediction log and /feedback join on them.",
        ]
    else:
        lines += [
            "# The column that names a record (never a feature). The pattern allows the",
            "# characters and lengths the table's ids have; ASCII only.",
        ]
    pattern = ident.pattern if not ident.generated else GENERATED_ID_PATTERN
    lines += [
        "id:",
        f"  name: {_q(ident.name)}",
        f"  pattern: {_q(pattern)}",
        f"  description: {_q('Row number.' if ident.generated else 'The record id.')}",
        "",
        f"# The binary label. Observed positive rate {_share(label.rate)}; the band runs from",
        "# half of it to halfway to 1: outside it an extract is almost certainly wrong.",
        "label:",
        f"  name: {_q(label.name)}",
        f"  levels: [{_q(label.negative)}, {_q(label.positive)}]",
        f"  positive: {_q(label.positive)}",
        f"  positive_rate: [{_q(label.band[0])}, {_q(label.band[1])}]",
        "",
        "numeric:" if profile.numeric else "numeric: []",
    ]
    for column in profile.numeric:
        lines += _numeric_lines(column)
    lines += ["", "categorical:" if profile.categorical else "categorical: []"]
    for column in profile.categorical:
        lines += _categorical_lines(column)
    lines += ["", "implications: []", ""]
    if profile.dropped:
        lines += [
            "# Left out of the model (repairs.py drops them before validation). To use one,",
            "# describe it above and delete its name from DROPPED in repairs.py:",
        ]
        lines += [f"#   {d.name}: {d.reason}" for d in profile.dropped]
        lines.append("")
    lines += [
        "# The first row with every feature filled: the API's documented example.",
        "example:",
    ]
    lines += [f"  {_q(name)}: {_q(value)}" for name, value in profile.example.items()]
    return "\n".join(lines) + "\n"


def _observed(column: Column) -> str:
    parts = [f"{column.distinct} values"]
    if column.kind != "categorical":
        low, high = column.observed
        parts = [f"observed {low:.6g}..{high:.6g}"]
    if column.missing_share:
        parts.append(f"{_share(column.missing_share)} blank")
    if column.note:
        parts.append(column.note)
    return "; ".join(parts)


def _missing(column: Column) -> str:
    return f", max_missing: {_q(column.max_missing)}" if column.max_missing else ""


def _numeric_lines(column: Column) -> list[str]:
    return [
        f"  # {_observed(column)}",
        f"  - {{name: {_q(column.name)}, kind: {column.kind}, min_value: {_q(column.min_value)}, "
        f"max_value: {_q(column.max_value)}{_missing(column)}}}",
    ]


def _categorical_lines(column: Column) -> list[str]:
    levels = ", ".join(_q(level) for level in column.levels)
    return [
        f"  # {_observed(column)}",
        f"  - {{name: {_q(column.name)}, levels: [{levels}]{_missing(column)}}}",
    ]


def _tuple_of(names: Iterable[str]) -> str:
    """A tuple of strings as ruff formats it: ``()``, or one name per line."""
    items = "".join(f"    {_q(name)},\n" for name in names)
    return f"(\n{items})" if items else "()"


def repairs_py(profile: Profile) -> str:
    dropped = _tuple_of(d.name for d in profile.dropped)
    blanks = _tuple_of(profile.blanks)
    return f'''"""Repairs of the raw table before validation (drafted by `make adopt`). YOURS.

`churn.core.repairs.tidy` strips the text around every value, turns the tokens
below into blanks and drops the columns the contract leaves out (contract.yaml
says why each was left out). Add the repairs your extract needs, as the
template's example did (a flag stored as 0/1, a blank that means zero); keep
each one idempotent, and leave values you do not recognise for validation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from churn.core.repairs import tidy

if TYPE_CHECKING:  # the service loads the domain too, and has no pandas
    import pandas as pd

# Cells that mean "no value" in this table.
BLANKS: tuple[str, ...] = {blanks}
# Columns the model does not use.
DROPPED: tuple[str, ...] = {dropped}


def repair(frame: pd.DataFrame) -> pd.DataFrame:
    """The table tidied: text stripped, BLANKS blank, DROPPED columns gone."""
    return tidy(frame, blanks=BLANKS, drop=DROPPED)
'''


def shift_choice(profile: Profile) -> tuple[str | None, str | None, str | None]:
    """The numeric feature to raise and the categorical feature (and level) to move records
    to in the drafted scenario: the first of each kind; the level is the second most common."""
    numeric = profile.numeric[0].name if profile.numeric else None
    categorical, to_level = None, None
    if profile.categorical:
        column = profile.categorical[0]
        counts = profile.table[column.name].str.strip().value_counts()
        ranked = sorted(column.levels, key=lambda level: (-int(counts.get(level, 0)), level))
        categorical, to_level = column.name, ranked[1]
    return numeric, categorical, to_level


def scenarios_py(profile: Profile) -> str:
    numeric, categorical, to_level = shift_choice(profile)
    return f'''"""This domain's scenarios, for the machinery's tests and benchmarks. YOURS.

Drafted by `make adopt`: until you write a shift your business can see (a price
change, a new market, a campaign), the drift, monitoring and gate tests use a
generic one (`churn.core.scenarios.ContractShift`): a share of records moves to
one level of a categorical feature and a numeric feature rises by a share of
its valid range. Every record stays valid under the contract.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from churn.core.contract import load_contract
from churn.core.scenarios import ContractShift

shift = ContractShift(
    load_contract(Path(__file__).with_name("contract.yaml")),
    numeric={_q(numeric) if numeric else None},
    categorical={_q(categorical) if categorical else None},
    to_level={_q(to_level) if to_level else None},
)
SHIFTED_FEATURES: tuple[str, ...] = shift.features

# Heavy regularisation: a model far below any gate set from the default one.
WEAKER_TRAIN: dict[str, Any] = {{"logistic_regression": {{"C": 0.0005}}}}

# Words of this domain's prose that the machinery must never use (the fork test
# greps for them): add yours, e.g. what your records and outcomes are called.
VOCABULARY: tuple[str, ...] = ()
'''


INIT_PY = '''"""The domain room: everything this fork knows about its data. THIS FOLDER IS YOURS.

- ``contract.yaml``: the data contract (columns, levels, ranges, rules, id,
  label, an example record), from which the machinery derives everything;
- ``repairs.py``: fixes for the raw file's known quirks, applied before
  validation;
- ``scenarios.py``: the scenarios for tests and benchmarks (a realistic
  drift, a weaker model);
- ``tests/``: behavioural expectations of *this* data and model.

Drafted by `make adopt`. Nothing outside this folder imports it: entry points
find it with `churn.core.domain.load_domain`. See README, "Adapt this
template to your data".
"""

from pathlib import Path

from churn.core.domain import Domain, Scenarios
from churn.domain.repairs import repair
from churn.domain.scenarios import SHIFTED_FEATURES, VOCABULARY, WEAKER_TRAIN, shift

DOMAIN = Domain.from_folder(
    Path(__file__).parent,
    repair=repair,
    scenarios=Scenarios(
        shift=shift,
        shifted_features=SHIFTED_FEATURES,
        weaker_train=WEAKER_TRAIN,
        vocabulary=VOCABULARY,
    ),
)
'''


def tests_conftest_py(data_file: str) -> str:
    return f'''"""Fixtures for this room's own tests: the domain, its raw table, the parameters.

When the suite runs on another domain (``CHURN_DOMAIN``), these tests skip:
they describe this data, not the machinery.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from churn.core.data import read_csv
from churn.core.domain import Domain, load_domain
from churn.core.params import Params, load_params
from churn.domain import DOMAIN

RAW_FILE = Path({_q(data_file)})


@pytest.fixture(scope="session", autouse=True)
def _only_on_this_domain() -> None:
    if load_domain().contract != DOMAIN.contract:
        pytest.skip("the suite runs on another domain: this room's tests do not apply")


@pytest.fixture(scope="session")
def domain() -> Domain:
    return DOMAIN


@pytest.fixture(scope="session")
def raw_file(pytestconfig: pytest.Config) -> Path:
    return pytestconfig.rootpath / RAW_FILE


@pytest.fixture(scope="session")
def raw_table(raw_file: Path) -> pd.DataFrame:
    """The raw file as text columns (treat as read-only; copy to modify)."""
    return read_csv(raw_file)


@pytest.fixture(scope="session")
def params(pytestconfig: pytest.Config) -> Params:
    return load_params(pytestconfig.rootpath / "params.yaml")
'''


TESTS_DATA_PY = '''"""This room's raw table and repairs (drafted by `make adopt`): add yours.

Good additions: the file's checksum and row count (so a silently changed
extract fails here), each quirk your repairs fix, shown on the raw file.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from churn.core.data import clean, load
from churn.core.domain import Domain
from churn.pipeline.validation import validate


def test_the_raw_table_passes_the_contract(raw_table: pd.DataFrame, domain: Domain) -> None:
    report = validate(clean(raw_table, domain), ["raw"], domain.contract)
    assert report.success, report.render()
    assert report.rows == len(raw_table)


def test_the_example_record_is_a_row_of_the_table(raw_table: pd.DataFrame, domain: Domain) -> None:
    contract = domain.contract
    cleaned = clean(raw_table, domain)
    rows = cleaned[cleaned[contract.id.name].eq(contract.example[contract.id.name])]
    assert len(rows) == 1
    for column, value in contract.example.items():
        assert rows.iloc[0][column] == value, column


def test_repairs_are_idempotent_and_leave_their_input_alone(
    raw_table: pd.DataFrame, domain: Domain
) -> None:
    before = raw_table.copy()
    once = domain.repair(raw_table)
    pd.testing.assert_frame_equal(raw_table, before)
    pd.testing.assert_frame_equal(domain.repair(once), once)


def test_prepared_splits_read_back_the_same(
    raw_table: pd.DataFrame, domain: Domain, tmp_path: Path
) -> None:
    once = clean(raw_table, domain)
    once.to_csv(tmp_path / "prepared.csv", index=False)
    pd.testing.assert_frame_equal(load([tmp_path / "prepared.csv"], domain), once)
'''


TESTS_MODEL_PY = '''"""How a model trained on this data should behave (drafted by `make adopt`).

Write what you know about your domain as tests, like the template's example
did: directional ones (a longer commitment lowers the risk) and invariance
ones (a protected attribute barely moves it), on the held-out split. The
drafted test below holds for any data: every value the contract allows is
scored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from churn.core.data import clean, features
from churn.pipeline import prepare, train

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from churn.core.domain import Domain
    from churn.core.params import Params


@pytest.fixture(scope="module")
def trained(
    raw_table: pd.DataFrame, params: Params, domain: Domain
) -> tuple[Pipeline, pd.DataFrame]:
    train_split, test_split = prepare.run(raw_table, params.prepare, domain)
    pipeline, _ = train.run(clean(train_split, domain), params.train, domain.contract)
    return pipeline, clean(test_split, domain)


def test_every_value_the_contract_allows_is_scored(
    trained: tuple[Pipeline, pd.DataFrame], domain: Domain
) -> None:
    pipeline, test = trained
    contract = domain.contract
    x = features(test, contract)
    for column in contract.categorical:
        for level in column.levels:
            risk = pipeline.predict_proba(x.assign(**{column.name: level}))[:, 1]
            assert np.isfinite(risk).all() and ((risk >= 0) & (risk <= 1)).all()
    for number in contract.numeric:
        for bound in (number.min_value, number.max_value):
            risk = pipeline.predict_proba(x.assign(**{number.name: bound}))[:, 1]
            assert np.isfinite(risk).all() and ((risk >= 0) & (risk <= 1)).all()
'''


def data_readme(profile: Profile, data_file: str) -> str:
    ident = profile.id
    id_line = (
        f"- Id: none in the table; `make adopt` numbered the rows as `{ident.name}`."
        if ident.generated
        else f"- Id: `{ident.name}`."
    )
    dropped = ", ".join(f"`{d.name}`" for d in profile.dropped) or "none"
    blanks = ", ".join(f"`{t}`" for t in profile.blanks) or "none"
    return f"""# Raw data

`{Path(data_file).name}`: adopted with `make adopt` from `{profile.source.name}`.

- Rows: {profile.rows}.
- Label: `{profile.label.name}`, positive `{profile.label.positive}`
  ({_share(profile.label.rate)} of rows).
{id_line}
- Features: {len(profile.numeric)} numeric, {len(profile.categorical)} categorical.
- Left out: {dropped}.
- Tokens read as blank: {blanks}.

Write down here where the table comes from, who owns it, how often it is
refreshed and the quirks your repairs fix (`src/churn/domain/repairs.py`).
"""


def gate_yaml(baseline: Baseline) -> str:
    """The ``gate:`` block of params.yaml, set from the baseline, with its rule."""
    lines = [
        "# The quality gate a model must pass to be merged or promoted, per metric of",
        "# metrics.json: `limit` is the worst acceptable value (a floor, or a ceiling",
        "# when lower is better) and `max_regression` the largest allowed move in the",
        "# bad direction against the baseline (main). `churn gate` enforces it.",
        f"# Set by `make adopt` from {baseline.folds}-fold cross-validation of the model",
        f"# on {baseline.rows} rows: limit = mean - {baseline.limit_stds:g} std (+ when lower is",
        f"# better), max_regression = 1 std, at least {baseline.min_regression:g}.",
        "# Tighten it as you learn.",
        "gate:",
    ]
    for metric in baseline.metrics:
        rule = baseline.rules[metric]
        direction = "" if rule.higher_is_better else ", higher_is_better: false"
        mean, std = baseline.means[metric], baseline.stds[metric]
        lines.append(
            f"  {metric}: {{limit: {rule.limit:.3f}, max_regression: {rule.max_regression:.3f}"
            f"{direction}}}  # CV {mean:.3f} +- {std:.3f}"
        )
    return "\n".join(lines) + "\n"
