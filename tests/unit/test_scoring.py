"""Batch scoring in this process: row checks with reasons, chunks, formats, no leftovers.

Runs `churn.scoring.local.run` on the small real model (`small_model_dir`)
and records from the sample; every bad row comes from `tests.support.bad_data`
(derived from the contract), so nothing here knows the example's domain.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from churn.core.data import clean
from churn.core.domain import Domain, load_domain
from churn.core.errors import DataError
from churn.scoring import chunk as steps
from churn.scoring import local, storage
from churn.scoring.rows import reasons
from churn.scoring.summary import Summary
from churn.serving import loader
from churn.serving.loader import LoadedModel
from churn.serving.settings import ServingSettings
from tests.support.bad_data import (
    LEVELS,
    NOT_NULL,
    PATTERN,
    RANGE,
    TABLE,
    TYPE,
    BadCase,
    bad_cases,
    nullable_columns,
)
from tests.support.columns import (
    converse,
    forward_break,
    lone_rule_variants,
)

ROW_LEVEL = {LEVELS, NOT_NULL, PATTERN, RANGE, TYPE}


@pytest.fixture(scope="module")
def small_model(small_model_dir: Path, domain: Domain) -> LoadedModel:
    return loader.load(ServingSettings(model_dir=small_model_dir), domain.contract)


def score(
    frame: pd.DataFrame, tmp_path: Path, domain: Domain, model: LoadedModel
) -> tuple[Summary, pd.DataFrame, pd.DataFrame]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    source = tmp_path / "input.csv"
    frame.to_csv(source, index=False)
    outputs = local.Outputs.beside(str(tmp_path / "out" / "scores.parquet"))
    summary = local.run(str(source), outputs, domain=domain, model=model)
    return (
        summary,
        pd.read_parquet(outputs.scores.path),
        pd.read_parquet(outputs.rejects.path),
    )


def row_cases(domain: Domain) -> list[object]:
    label = domain.contract.label.name
    # Too many blanks in a nullable column is a fault of the file, not of a row.
    shares = {(c.name, NOT_NULL) for c in nullable_columns(domain.contract)}
    return [
        pytest.param(case, id=case.name)
        for case in bad_cases(domain)
        if case.column not in (TABLE, label)
        and case.expectation in ROW_LEVEL
        and (case.column, case.expectation) not in shares
    ]


@pytest.mark.parametrize("case", row_cases(load_domain()))
def test_a_bad_row_is_rejected_with_its_reason_and_the_rest_scored(
    case: BadCase,
    raw_sample: pd.DataFrame,
    domain: Domain,
    small_model: LoadedModel,
    tmp_path: Path,
) -> None:
    contract = domain.contract
    good = raw_sample.copy()
    edited = case.edit(raw_sample.copy())
    changed = [
        i for i in range(len(good)) if not good.iloc[i].fillna("").equals(edited.iloc[i].fillna(""))
    ]
    assert changed, "the case changes no row"
    summary, scores, rejects = score(edited, tmp_path, domain, small_model)
    assert summary.rejected == len(changed) == len(rejects)
    assert sorted(rejects[steps.ROW]) == changed
    assert all(case.column in reason for reason in rejects[steps.REASON])
    assert summary.scored == len(scores) == len(good) - len(changed)
    ids = set(edited[contract.id.name].iloc[changed].dropna())
    assert not ids & set(scores[contract.id.name])


def test_a_rules_level_alone_is_scored_only_under_a_one_way_rule(
    raw_sample: pd.DataFrame, domain: Domain
) -> None:
    contract = domain.contract
    frame = clean(raw_sample, domain)
    for rule, one_way, both_ways in lone_rule_variants(contract):
        alone = frame.assign(**converse(contract, rule))
        assert (reasons(alone, one_way) == "").all()
        why = reasons(alone, both_ways)
        expected = f"{rule.then[0]} must be {rule.then_value!r} exactly when {rule.when} is"
        assert any(expected in reason for reason in why), set(why)
        broken = frame.assign(**forward_break(contract, rule))
        expected = f"{rule.then[0]} must be {rule.then_value!r} when {rule.when} is"
        assert all(expected in reason for reason in reasons(broken, one_way))


def test_chunks_give_the_answers_of_one_chunk(
    raw_sample: pd.DataFrame, domain: Domain, small_model: LoadedModel, tmp_path: Path
) -> None:
    """A Parquet input read 7 rows at a time: same scores, same summary, rows numbered
    across chunks."""
    contract = domain.contract
    broken = raw_sample.copy()
    last = len(broken) - 1
    first_level = contract.categorical[0]
    broken.loc[last, first_level.name] = "".join(first_level.levels) + "?"
    source = tmp_path / "input.parquet"
    broken.to_parquet(source)
    whole_dir, chunked_dir = tmp_path / "whole", tmp_path / "chunked"
    results = []
    for directory, rows in ((whole_dir, 1_000_000), (chunked_dir, 7)):
        outputs = local.Outputs.beside(str(directory / "scores.parquet"))
        summary = local.run(str(source), outputs, domain=domain, model=small_model, chunk_rows=rows)
        results.append(
            (summary, pd.read_parquet(outputs.scores.path), pd.read_parquet(outputs.rejects.path))
        )
    (whole, whole_scores, whole_rejects), (chunked, chunked_scores, chunked_rejects) = results
    assert pq.ParquetFile(chunked_dir / "scores.parquet").num_row_groups > 1
    pd.testing.assert_frame_equal(
        whole_scores.drop(columns=steps.SCORED_AT), chunked_scores.drop(columns=steps.SCORED_AT)
    )
    assert list(chunked_rejects[steps.ROW]) == list(whole_rejects[steps.ROW]) == [last]
    keys = ("rows", "scores", "features", "drift")
    whole_dict, chunked_dict = whole.to_dict(), chunked.to_dict()
    for key in keys:
        if key == "scores":
            assert whole_dict[key]["mean"] == pytest.approx(chunked_dict[key]["mean"], abs=1e-12)
            assert whole_dict[key]["counts"] == chunked_dict[key]["counts"]
        else:
            assert whole_dict[key] == chunked_dict[key], key


def test_typed_parquet_scores_as_the_csv_export(
    raw_sample: pd.DataFrame, domain: Domain, small_model: LoadedModel, tmp_path: Path
) -> None:
    """Numbers stored as numbers give the scores of the same records as text."""
    contract = domain.contract
    typed = clean(raw_sample, domain)
    for column in contract.numeric:
        typed[column.name] = typed[column.name].astype("float64")
    typed_path = tmp_path / "typed.parquet"
    typed.to_parquet(typed_path)
    assert pa.types.is_floating(pq.read_schema(typed_path).field(contract.numeric[0].name).type)
    _, from_csv, _ = score(typed, tmp_path / "csv", domain, small_model)
    outputs = local.Outputs.beside(str(tmp_path / "parquet" / "scores.parquet"))
    local.run(str(typed_path), outputs, domain=domain, model=small_model)
    from_parquet = pd.read_parquet(outputs.scores.path)
    assert len(from_csv) == len(typed)
    np.testing.assert_array_equal(from_csv[steps.PROBABILITY], from_parquet[steps.PROBABILITY])


def test_the_output_carries_the_model_and_the_service_threshold(
    raw_sample: pd.DataFrame, domain: Domain, small_model: LoadedModel, tmp_path: Path
) -> None:
    summary, scores, rejects = score(raw_sample, tmp_path, domain, small_model)
    threshold = small_model.card.threshold
    assert summary.rejected == 0 and rejects.empty
    assert list(scores.columns) == [domain.contract.id.name, *steps.SCORE_COLUMNS]
    assert (scores[steps.MODEL_SHA256] == small_model.sha256).all()
    assert (scores[steps.MODEL_VERSION] == small_model.version).all()
    assert (scores[steps.DECISION] == (scores[steps.PROBABILITY] >= threshold)).all()
    assert scores[steps.SCORED_AT].nunique() == 1
    written = json.loads((tmp_path / "out" / "scores.summary.json").read_text())
    assert written["rows"] == {"read": len(raw_sample), "scored": len(raw_sample), "rejected": 0}
    assert sum(written["scores"]["counts"]) == len(raw_sample)
    assert written["scores"]["flagged"] == int(scores[steps.DECISION].sum())
    assert written["model"]["sha256"] == small_model.sha256
    profile = small_model.drift_profile
    assert profile is not None
    features = written["features"]["features"]
    assert [f["name"] for f in features] == [f.name for f in profile.reference.features]
    assert all(sum(f["counts"]) == len(raw_sample) for f in features)
    assert written["drift"]["current"]["rows"] == len(raw_sample)


def test_a_failed_run_leaves_no_output(
    raw_sample: pd.DataFrame, domain: Domain, small_model: LoadedModel, tmp_path: Path
) -> None:
    """A CSV broken after its first chunks: the error, and nothing under any output name."""
    source = tmp_path / "input.csv"
    # Well past the part read to find the columns, so the run has started writing.
    pd.concat([raw_sample] * 200, ignore_index=True).to_csv(source, index=False)
    assert source.stat().st_size > 4 * storage.HEADER_BLOCK_BYTES
    with source.open("a") as handle:
        handle.write('"an unclosed quote\n' * 3)
    out = tmp_path / "out"
    outputs = local.Outputs.beside(str(out / "scores.parquet"))
    with pytest.raises(DataError, match="not readable"):
        local.run(str(source), outputs, domain=domain, model=small_model, csv_block_bytes=1 << 15)
    assert out.is_dir()  # the writers had started
    assert list(out.iterdir()) == []


def test_the_report_shows_counts_model_and_drift(
    raw_sample: pd.DataFrame, domain: Domain, small_model: LoadedModel, tmp_path: Path
) -> None:
    from churn.scoring.report import markdown

    broken = raw_sample.copy()
    broken.loc[0, domain.contract.id.name] = ""
    summary, _, _ = score(broken, tmp_path, domain, small_model)
    drift_json = tmp_path / "drift.json"
    drift_json.write_text(
        json.dumps({"drift": True, "drifted_features": ["a", "b"], "reference": {"source": "x"}})
    )
    text = markdown(str(tmp_path / "out" / "scores.parquet"), drift_json)
    assert f"| {summary.read:,} | {summary.scored:,} | 1 |" in text
    assert small_model.sha256 in text
    assert "**DRIFT** (a, b)" in text
    with pytest.raises(DataError, match="no such file"):
        markdown(str(tmp_path / "elsewhere.parquet"))
