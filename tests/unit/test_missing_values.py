"""Missing values, layer by layer and end to end, on the synthetic domain.

The example's contract has no column that may be blank; the synthetic loan
room has one numeric and one categorical column with ``max_missing``, and
`churn.pipeline.synth.generate` blanks some of their cells. Every layer is
the real one: reading, Great Expectations, the trained pipeline and its ONNX
export, the service (in process), batch scoring, drift profiles.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn.core.contract import MISSING_LEVEL, Contract, api_name
from churn.core.data import clean, features, read_csv
from churn.core.domain import Domain
from churn.core.errors import DataError
from churn.core.params import Params
from churn.pipeline import prepare
from churn.pipeline.model import ONNX_TOLERANCE, load_model, onnx_difference
from churn.pipeline.synth import generate
from churn.pipeline.validation import NOT_NULL, validate
from churn.serving.app import create_app
from churn.serving.loader import load_directory
from churn.serving.records import to_api_records
from churn.serving.settings import ServingSettings
from tests.support.asgi import AppClient
from tests.support.bad_data import blank_share, missing_cases, nullable_columns, set_cell
from tests.support.domains import synthetic_domain
from tests.support.models import ESTIMATORS, TrainedModel, train_model

ROWS = 1500


@pytest.fixture(scope="module")
def loans() -> Domain:
    domain = synthetic_domain()
    kinds = {type(c).__name__ for c in nullable_columns(domain.contract)}
    assert kinds == {"Numeric", "Categorical"}, "the room must exercise both kinds"
    return domain


@pytest.fixture(scope="module")
def raw(loans: Domain) -> pd.DataFrame:
    """Generated records with blanks, as the raw CSV holds them (text)."""
    return generate(loans.contract, ROWS, seed=0)


@pytest.fixture(scope="module", params=ESTIMATORS)
def trained(
    request: pytest.FixtureRequest,
    raw: pd.DataFrame,
    loans: Domain,
    params: Params,
    tmp_path_factory: pytest.TempPathFactory,
) -> TrainedModel:
    """A model of each estimator, trained and written as `train` does (ONNX, card, profile)."""
    train_params = params.train.model_copy(update={"estimator": request.param, "cv_folds": 2})
    directory = tmp_path_factory.mktemp(f"model-{request.param}")
    return train_model(raw, params, loans, directory, train_params)


def blank_rows(frame: pd.DataFrame, contract: Contract) -> np.ndarray:
    return frame[[c.name for c in nullable_columns(contract)]].isna().any(axis=1).to_numpy()


# -- reading ------------------------------------------------------------------------


def test_a_blank_cell_reads_as_missing_in_raw_files_and_prepared_splits(
    raw: pd.DataFrame, loans: Domain, params: Params, tmp_path: Path
) -> None:
    contract = loans.contract
    column = next(c.name for c in nullable_columns(contract) if c in contract.categorical)
    text = raw.copy()
    text[column] = text[column].astype(object)
    text.loc[text.index[:3], column] = ["", "  ", None]  # empty, whitespace, absent
    source = tmp_path / "raw.csv"
    text.to_csv(source, index=False)

    frame = clean(read_csv(source), loans)
    assert frame[column].iloc[:3].isna().all()
    assert frame[column].isna().sum() == raw[column].isna().sum() + 3

    train, test = prepare.run(read_csv(source), params.prepare, loans)
    for split in (train, test):  # prepare writes CSV; reading back gives the same blanks
        split.to_csv(tmp_path / "split.csv", index=False)
        back = clean(read_csv(tmp_path / "split.csv"), loans)
        pd.testing.assert_frame_equal(back.isna(), split.reset_index(drop=True).isna())
        assert features(back, contract)[column].isna().sum() == 0  # the model's spelling
        assert (features(back, contract)[column] == MISSING_LEVEL).sum() == split[
            column
        ].isna().sum()


# -- validation ---------------------------------------------------------------------


def _validate(frame: pd.DataFrame, domain: Domain) -> tuple[bool, str, list[tuple[str, str]]]:
    report = validate(clean(frame, domain), ["records"], domain.contract)
    return report.success, report.render(), [(c.column, c.expectation) for c in report.failures]


def test_blanks_within_the_share_pass(raw: pd.DataFrame, loans: Domain) -> None:
    frame = raw.copy()
    for column in nullable_columns(loans.contract):  # just under the limit
        frame = blank_share(column.name, column.max_missing * 0.9)(frame)

    success, text, _ = _validate(frame, loans)

    assert success, text


@pytest.mark.parametrize("index", range(2))
def test_too_many_blanks_in_a_nullable_column_fail_readably(
    raw: pd.DataFrame, loans: Domain, index: int
) -> None:
    case = missing_cases(loans.contract)[index]
    column = next(c for c in nullable_columns(loans.contract) if c.name == case.column)

    success, text, failures = _validate(case.edit(raw.copy()), loans)

    assert not success
    assert failures == [(column.name, NOT_NULL)], text
    assert f"- {column.name}: missing in at most {column.max_missing:.1%} of rows" in text
    assert f"rows missing ({2 * column.max_missing:.2%} of rows)" in text


def test_a_blank_in_a_column_that_may_not_be_missing_still_fails(
    raw: pd.DataFrame, loans: Domain
) -> None:
    contract = loans.contract
    for column in (
        next(c for c in contract.numeric if not c.nullable),
        next(c for c in contract.categorical if not c.nullable),
    ):
        success, text, failures = _validate(set_cell(column.name, None)(raw.copy()), loans)
        assert not success
        assert failures == [(column.name, NOT_NULL)], text
        assert f"- {column.name}: no missing values" in text


@pytest.fixture(scope="module")
def relaxed(loans: Domain) -> Domain:
    """The synthetic room with both columns of its first rule nullable."""
    contract = loans.contract
    assert contract.implications, "the synthetic room has a rule"
    rule = contract.implications[0]
    data = contract.model_dump()
    for column in data["categorical"]:
        if column["name"] in (rule.when, rule.then[0]):
            column["max_missing"] = 0.1
    return Domain(Contract.model_validate(data), loans.repair)


def _rule_blanks(raw: pd.DataFrame, contract: Contract) -> tuple[pd.DataFrame, str, pd.Index]:
    """Records with blanks on each side of the first rule, none breaking it if filled."""
    rule = contract.implications[0]
    governed = rule.then[0]
    frame = raw.copy()
    holds = frame.index[frame[rule.when].eq(rule.when_value)]
    other = frame.index[frame[rule.when].ne(rule.when_value) & frame[rule.when].notna()]
    for column in (rule.when, governed):
        frame[column] = frame[column].astype(object)
    frame.loc[holds[:3], rule.when] = None  # its `then` holds the reserved value
    frame.loc[holds[3:6], governed] = None
    frame.loc[other[:3], governed] = None
    return frame, governed, holds


def test_a_blank_makes_a_cross_field_rule_not_applicable(
    raw: pd.DataFrame, relaxed: Domain
) -> None:
    """With the rule's columns nullable, a blank on either side breaks nothing."""
    contract = relaxed.contract
    frame, governed, holds = _rule_blanks(raw, contract)

    success, text, _ = _validate(frame, relaxed)

    assert success, text
    rule = contract.implications[0]
    wrong = next(lv for lv in contract.levels_by_column[governed] if lv != rule.then_value)
    frame.loc[holds[6], governed] = wrong  # a filled record still breaks it
    success, text, failures = _validate(frame, relaxed)
    assert not success and {c for c, _ in failures} == {governed}, text


def test_every_other_layer_skips_a_rule_on_a_blank(raw: pd.DataFrame, relaxed: Domain) -> None:
    """The API's record model, the drift check and batch scoring's row checks."""
    from churn.monitoring.drift import check
    from churn.scoring.rows import reasons
    from churn.serving import schemas

    contract = relaxed.contract
    frame, governed, holds = _rule_blanks(raw, contract)
    blank = frame[[contract.implications[0].when, governed]].isna().any(axis=1)
    cleaned = clean(frame, relaxed)

    check(cleaned, "records", contract=contract)  # no DataError
    assert (reasons(cleaned, contract) == "").all()
    api = schemas.build(contract)
    for body in to_api_records(cleaned[blank.to_numpy()], contract):
        api.Record.model_validate(body)  # no ValidationError
    rule = contract.implications[0]
    wrong = next(lv for lv in contract.levels_by_column[governed] if lv != rule.then_value)
    broken = cleaned.copy()
    broken.loc[holds[6], governed] = wrong
    with pytest.raises(DataError, match=governed):
        check(broken, "records", contract=contract)
    assert (reasons(broken, contract) != "").sum() == 1


# -- the model and its ONNX export ----------------------------------------------------


def test_onnx_export_matches_the_pipeline_on_rows_with_blanks(
    trained: TrainedModel, loans: Domain
) -> None:
    contract = loans.contract
    rows = blank_rows(trained.test, contract)
    assert rows.sum() >= 10
    x = features(trained.test, contract)

    onnx = (trained.directory / "model.onnx").read_bytes()

    difference = onnx_difference(trained.pipeline, onnx, x[rows], contract)

    assert difference <= ONNX_TOLERANCE
    loaded, _ = load_model(trained.directory)  # skops trusts what the imputers hold
    np.testing.assert_array_equal(
        loaded.predict_proba(x[rows]), trained.pipeline.predict_proba(x[rows])
    )
    print(f"{type(trained.pipeline[-1]).__name__}: max |difference| {difference:.1e}")


# -- the service ------------------------------------------------------------------------


def test_the_api_scores_null_in_a_nullable_field_and_refuses_it_elsewhere(
    trained: TrainedModel, loans: Domain
) -> None:
    contract = loans.contract
    loaded = load_directory(trained.directory, contract, version="test", source="test")
    record = contract.api_example()
    nulls = [api_name(c.name) for c in nullable_columns(contract)]
    strict = next(api_name(c) for c in contract.feature_names if api_name(c) not in nulls)
    with AppClient(create_app(ServingSettings(), loaded, contract=contract)) as client:
        answer = client.post("/predict", json={**record, **dict.fromkeys(nulls)})
        refused = client.post("/predict", json={**record, strict: None})
        absent = client.post("/predict", json={k: v for k, v in record.items() if k != nulls[0]})

    assert answer.status_code == 200, answer.text
    expected_row = pd.DataFrame([contract.example]).assign(
        **{c.name: np.nan for c in nullable_columns(contract)}
    )
    expected = trained.pipeline.predict_proba(features(expected_row, contract))[0, 1]
    assert answer.json()["probability"] == pytest.approx(expected, abs=1e-5)
    assert refused.status_code == 422
    assert strict in refused.text
    assert absent.status_code == 422  # nullable, but the key is required


def test_the_openapi_schema_lets_only_nullable_fields_be_null(loans: Domain) -> None:
    from churn.serving import schemas

    properties = schemas.build(loans.contract).input_schema["properties"]
    nulls = {api_name(c.name) for c in nullable_columns(loans.contract)}
    for name in map(api_name, loans.contract.feature_names):
        kinds = [alt.get("type") for alt in properties[name].get("anyOf", [properties[name]])]
        assert ("null" in kinds) == (name in nulls), name
    assert schemas.build(loans.contract).example == loans.contract.api_example()


# -- drift --------------------------------------------------------------------------------


def test_the_drift_profile_has_a_missing_bin_and_a_jump_in_blanks_drifts(
    trained: TrainedModel, loans: Domain, params: Params
) -> None:
    from churn.monitoring.drift import compare
    from churn.monitoring.drift.profile import MISSING_BIN, ModelDriftProfile

    contract = loans.contract
    profile = ModelDriftProfile.model_validate_json(
        (trained.directory / "drift_profile.json").read_text()
    )
    by_name = {f.name: f for f in profile.reference.features}
    for column in nullable_columns(contract):
        feature = by_name[column.name]
        assert feature.missing and feature.labels[-1] == MISSING_BIN
        assert feature.counts[-1] > 0  # the training split had blanks
    assert not any(
        by_name[c].missing
        for c in contract.feature_names
        if c not in {c.name for c in nullable_columns(contract)}
    )

    reference = clean(generate(contract, 3000, seed=1), loans)
    same = clean(generate(contract, 2000, seed=2, first_id=3000), loans)
    blanker = same.copy()
    for column in nullable_columns(contract):
        blanker = blank_share(column.name, 0.4)(blanker)
    assert compare(reference, same, params.drift, contract=contract).drifted_features == []
    drifted = compare(reference, blanker, params.drift, contract=contract).drifted_features
    assert set(drifted) == {c.name for c in nullable_columns(contract)}


def test_the_live_window_counts_null_in_the_missing_bin(
    trained: TrainedModel, loans: Domain
) -> None:
    from churn.monitoring.drift.profile import ModelDriftProfile, count
    from churn.serving import schemas
    from churn.serving.drift_monitor import DriftWindow

    contract = loans.contract
    api = schemas.build(contract)
    profile = ModelDriftProfile.model_validate_json(
        (trained.directory / "drift_profile.json").read_text()
    ).reference
    frame = trained.test.head(400)
    assert blank_rows(frame, contract).any()
    bodies = to_api_records(frame, contract)  # what a client sends: null for a blank
    assert any(value is None for body in bodies for value in body.values())
    records = [api.Record.model_validate(body) for body in bodies]
    for batch in (records[:3], records):  # counted row by row, and a column at a time
        window = DriftWindow(profile, size=len(records) * 4)
        for start in range(0, len(batch), 100):
            window.add(batch[start : start + 100])
        _, counts = window.counts()
        for name, expected in count(profile, frame.head(len(batch))).items():
            np.testing.assert_array_equal(counts[name], expected, err_msg=name)


# -- batch scoring ----------------------------------------------------------------------


def test_batch_scoring_scores_blanks_where_allowed_and_rejects_them_elsewhere(
    trained: TrainedModel, loans: Domain
) -> None:
    from churn.scoring import chunk as steps
    from churn.serving.onnx_model import OnnxModel

    contract = loans.contract
    test = trained.test.reset_index(drop=True)
    text = test[list(steps.input_columns(contract))].astype(object).astype(str)
    text = text.mask(test[list(steps.input_columns(contract))].isna(), "")
    strict = next(c for c in contract.numeric if not c.nullable).name
    text.loc[0, strict] = ""
    model = OnnxModel((trained.directory / "model.onnx").read_bytes(), contract)
    stamp = steps.Stamp("test", "0" * 64, 0.5, pd.Timestamp.now(tz="UTC").to_pydatetime())

    result = steps.score_chunk(text, loans, model, stamp)

    assert list(result.rejected[steps.REASON]) == [f"{strict} is missing"]
    scored = test.iloc[1:]
    assert blank_rows(scored, contract).sum() > 0
    expected = trained.pipeline.predict_proba(features(scored, contract))[:, 1]
    np.testing.assert_allclose(result.scored[steps.PROBABILITY], expected, atol=1e-5)
