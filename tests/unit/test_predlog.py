"""The prediction log: files, reader, buffer, join and performance figures, without a server."""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError
from sklearn.metrics import roc_auc_score
from typer.testing import CliRunner

from churn.cli.app import app
from churn.core.artifacts import ModelCard
from churn.core.contract import Contract
from churn.core.errors import ModelError, PredictionLogError
from churn.core.params import MonitoringParams
from churn.monitoring.performance import figures, read_baseline, roc_auc, run, windows
from churn.monitoring.predlog import (
    FEEDBACK,
    PREDICTIONS,
    FeedbackRecord,
    PredictionRecord,
    ReadStats,
    file_name,
    iter_records,
    join,
    log_files,
    read_feedback,
    read_lines,
    read_predictions,
    s3_client,
)
from churn.serving import loader, schemas
from churn.serving.loader import LoadedModel
from churn.serving.middleware import ServiceMetrics
from churn.serving.prediction_log import encode_feedback, encode_predictions
from churn.serving.recorder import Recorder, RecorderMetrics
from churn.serving.settings import ServingSettings
from churn.serving.sinks import FileSink, recover_open_files
from tests.support.paths import PARAMS, REPO

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SHA = "a" * 64


def _prediction(
    request_id: str,
    record_id: str | None = None,
    *,
    at: datetime = T0,
    score: float = 0.5,
    sha: str = SHA,
) -> PredictionRecord:
    return PredictionRecord(
        time=at,
        request_id=request_id,
        id=record_id,
        model_version="1",
        model_sha256=sha,
        threshold=0.5,
        probability=score,
        decision=score >= 0.5,
        features={"x": 1},  # the log keeps whatever the API validated
    )


def _feedback(
    outcome: bool,
    request_id: str | None = None,
    record_id: str | None = None,
    *,
    observed: datetime = T0 + timedelta(days=30),
    received: datetime | None = None,
) -> FeedbackRecord:
    return FeedbackRecord(
        received_at=received or observed,
        request_id=request_id,
        id=record_id,
        outcome=outcome,
        observed_at=observed,
    )


def _lines(records: list[PredictionRecord]) -> bytes:
    return b"".join(r.model_dump_json().encode() + b"\n" for r in records)


def _recorder_metrics(metrics: ServiceMetrics, stream: str) -> RecorderMetrics:
    return RecorderMetrics(
        written=metrics.log_records.labels(stream),
        dropped_full=metrics.log_dropped.labels(stream, "buffer_full"),
        dropped_failed=metrics.log_dropped.labels(stream, "write_failed"),
        flush_errors=metrics.log_flush_errors.labels(stream),
    )


def _sample(metrics: ServiceMetrics, name: str, **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# -- file names and reading ------------------------------------------------------------


def test_file_names_sort_by_start_time_and_keep_the_host_safe() -> None:
    early = file_name(PREDICTIONS, T0, "pod/1 a", 7, 1, compress=False)
    late = file_name(PREDICTIONS, T0 + timedelta(microseconds=1), "a", 1, 1, compress=True)
    assert early == "predictions-20261101T120000.000000Z-pod-1-a-7-0001.jsonl"
    assert late.endswith(".jsonl.gz")
    assert sorted([late, early]) == [early, late]


def test_a_cut_off_last_line_is_skipped_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "predictions-1.jsonl.open"
    path.write_bytes(_lines([_prediction("a"), _prediction("b")]) + b'{"time": "2026-')
    content = read_lines(path)
    assert len(content.lines) == 2
    assert content.cut_off == b'{"time": "2026-'
    assert not content.clean
    stats = ReadStats()
    assert [r.request_id for r in read_predictions(tmp_path, stats)] == ["a", "b"]
    assert stats.cut_off == [path.name]
    assert stats.records == 2


def test_a_bad_line_before_the_last_is_corruption_and_named(tmp_path: Path) -> None:
    path = tmp_path / "predictions-1.jsonl"
    path.write_bytes(_lines([_prediction("a")]) + b"{not json}\n" + _lines([_prediction("b")]))
    with pytest.raises(PredictionLogError, match=r"predictions-1\.jsonl:2: not a PredictionRecord"):
        read_predictions(tmp_path)


def test_gzip_members_are_read_in_order_and_a_cut_member_keeps_the_rest(tmp_path: Path) -> None:
    first = gzip.compress(_lines([_prediction("a"), _prediction("b")]))
    second = gzip.compress(_lines([_prediction("c")]))
    whole = tmp_path / "predictions-1.jsonl.gz"
    whole.write_bytes(first + second)
    assert read_lines(whole).clean
    assert [r.request_id for r in read_predictions(tmp_path)] == ["a", "b", "c"]

    whole.write_bytes(first + second[: len(second) // 2])
    content = read_lines(whole)
    assert not content.clean
    assert len(content.lines) == 2


def test_reading_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PredictionLogError, match="not a directory"):
        read_predictions(tmp_path / "absent")


# -- files: rotation and recovery ------------------------------------------------------


def test_file_sink_rotates_by_size_and_leaves_only_complete_files(tmp_path: Path) -> None:
    completed: list[Path] = []
    batch = _lines([_prediction(f"r{i}") for i in range(3)])
    sink = FileSink(
        tmp_path,
        PREDICTIONS,
        rotate_bytes=2 * len(batch),
        rotate_s=3600,
        compress=False,
        on_complete=completed.append,
    )
    for _ in range(5):
        sink.write(batch)
    open_files = list(tmp_path.glob("*.open"))
    assert len(open_files) == 1  # the file being written
    assert len(completed) == 2  # two files reached two batches and were closed
    sink.close()
    assert not list(tmp_path.glob("*.open"))
    assert len(completed) == 3
    assert log_files(tmp_path, PREDICTIONS) == completed
    assert all(read_lines(path).clean for path in completed)
    assert len(read_predictions(tmp_path)) == 15
    assert {oct(path.stat().st_mode & 0o777) for path in completed} == {"0o640"}


def test_file_sink_rotates_by_age(tmp_path: Path) -> None:
    sink = FileSink(tmp_path, PREDICTIONS, rotate_bytes=1 << 20, rotate_s=0.05, compress=True)
    sink.write(_lines([_prediction("a")]))
    sink.tick()
    assert list(tmp_path.glob("*.open"))  # still young
    time.sleep(0.06)
    sink.tick()
    assert not list(tmp_path.glob("*.open"))
    sink.write(_lines([_prediction("b")]))
    sink.close()
    files = log_files(tmp_path, PREDICTIONS)
    assert [f.name.endswith(".jsonl.gz") for f in files] == [True, True]
    assert [r.request_id for r in read_predictions(tmp_path)] == ["a", "b"]


def test_recovery_cuts_a_dead_process_file_and_leaves_a_live_one(tmp_path: Path) -> None:
    dead = tmp_path / "predictions-20261101T000000.000000Z-h-1-0001.jsonl.open"
    dead.write_bytes(_lines([_prediction("a")]) + b'{"time": "20')
    live = FileSink(tmp_path, PREDICTIONS, rotate_bytes=1 << 20, rotate_s=3600, compress=False)
    live.write(_lines([_prediction("b")]))

    recovered = recover_open_files(tmp_path, PREDICTIONS)

    assert recovered == [dead.with_name(dead.name.removesuffix(".open"))]
    assert read_lines(recovered[0]).clean
    assert len(list(tmp_path.glob("*.open"))) == 1  # the live sink's file is untouched
    live.close()
    assert sorted(r.request_id for r in read_predictions(tmp_path)) == ["a", "b"]


def test_recovery_skips_a_file_locked_by_another_open_file(tmp_path: Path) -> None:
    path = tmp_path / "predictions-x.jsonl.open"
    path.write_bytes(_lines([_prediction("a")]))
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert recover_open_files(tmp_path, PREDICTIONS) == []
    finally:
        os.close(fd)
    assert len(recover_open_files(tmp_path, PREDICTIONS)) == 1


# -- the recorder ----------------------------------------------------------------------


def test_recorder_writes_in_batches_off_the_calling_thread(tmp_path: Path) -> None:
    metrics = ServiceMetrics()
    sink = FileSink(tmp_path, FEEDBACK, rotate_bytes=1 << 20, rotate_s=3600, compress=False)
    recorder = Recorder(
        FEEDBACK,
        sink,
        _recorder_metrics(metrics, FEEDBACK),
        capacity=1000,
        batch=10,
        flush_s=30,
    )
    recorder.start()
    for i in range(25):
        assert recorder.add(encode_feedback(_feedback(i % 2 == 0, request_id=f"r{i}")))
    deadline = time.monotonic() + 5
    while _sample(metrics, "churn_prediction_log_records_total", stream=FEEDBACK) < 20:
        assert time.monotonic() < deadline, "two batches of 10 were not written"
        time.sleep(0.01)
    recorder.close()  # writes the last 5
    assert _sample(metrics, "churn_prediction_log_records_total", stream=FEEDBACK) == 25
    assert [r.request_id for r in read_feedback(tmp_path)] == [f"r{i}" for i in range(25)]


def test_a_full_buffer_drops_new_items_whole_and_counts_them(tmp_path: Path) -> None:
    metrics = ServiceMetrics()
    sink = FileSink(tmp_path, FEEDBACK, rotate_bytes=1 << 20, rotate_s=3600, compress=False)
    recorder = Recorder(
        FEEDBACK,
        sink,
        _recorder_metrics(metrics, FEEDBACK),
        capacity=5,
        batch=5,
        flush_s=30,
    )  # not started: nothing drains the buffer
    kept = [recorder.add(encode_feedback(_feedback(True, request_id=f"r{i}"))) for i in range(8)]
    assert kept == [True] * 5 + [False] * 3
    two = encode_feedback(_feedback(True, request_id="x")) * 2
    assert not recorder.add(two, records=2)
    assert recorder.waiting == 5
    dropped = "churn_prediction_log_dropped_total"
    assert _sample(metrics, dropped, stream=FEEDBACK, reason="buffer_full") == 5
    recorder.close()
    assert [r.request_id for r in read_feedback(tmp_path)] == [f"r{i}" for i in range(5)]


def test_a_failed_write_is_counted_and_the_next_one_succeeds(tmp_path: Path) -> None:
    directory = tmp_path / "log"
    directory.mkdir()
    metrics = ServiceMetrics()
    sink = FileSink(directory, FEEDBACK, rotate_bytes=1 << 20, rotate_s=3600, compress=False)
    recorder = Recorder(
        FEEDBACK,
        sink,
        _recorder_metrics(metrics, FEEDBACK),
        capacity=10,
        batch=10,
        flush_s=30,
    )
    directory.rmdir()  # the disk went away
    recorder.add(encode_feedback(_feedback(True, request_id="lost")))
    recorder.flush()
    assert _sample(metrics, "churn_prediction_log_flush_errors_total", stream=FEEDBACK) == 1
    failed = _sample(
        metrics, "churn_prediction_log_dropped_total", stream=FEEDBACK, reason="write_failed"
    )
    assert failed == 1
    directory.mkdir()
    recorder.add(encode_feedback(_feedback(True, request_id="kept")))
    recorder.close()
    assert [r.request_id for r in read_feedback(directory)] == ["kept"]


@pytest.fixture(scope="module")
def small_model(small_model_dir: Path, contract: Contract) -> LoadedModel:
    """A real model (ONNX export and card) trained on the small sample."""
    return loader.load_directory(small_model_dir, contract, version="3", source="test")


def test_encoded_predictions_read_back_as_records(
    small_model: LoadedModel, contract: Contract, tmp_path: Path
) -> None:
    api = schemas.build(contract)
    example = api.example
    features = {k: v for k, v in example.items() if k != api.id_field}
    number = contract.numeric[0]  # set to its lowest valid value in the second record
    other_number, lowest = api.numeric_fields[0], number.min_value
    other = {
        **example,
        api.id_field: None,
        other_number: int(lowest) if number.kind == "int" else lowest,
    }
    records = [
        api.Record.model_validate_json(json.dumps(example)),
        api.Record.model_validate_json(json.dumps(other)),
    ]
    at = time.time()
    # One score on each side of the model's threshold (params.yaml's train.threshold).
    threshold = small_model.card.threshold
    above, below = (threshold + 1) / 2, threshold / 2
    data = encode_predictions(
        at, "req-1", small_model, records, [above, below], id_field=api.id_field
    )
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 2
    (tmp_path / "predictions-1.jsonl").write_bytes(data)
    first, second = read_predictions(tmp_path)
    assert first.request_id == second.request_id == "req-1"
    assert first.id == example[api.id_field]
    assert second.id is None
    assert first.time == datetime.fromtimestamp(at, UTC)
    assert (first.model_version, first.model_sha256) == ("3", small_model.sha256)
    assert (first.probability, first.decision, first.threshold) == (above, True, threshold)
    assert (second.probability, second.decision) == (below, False)
    assert first.features == features
    assert list(first.features) == list(features)  # in the API's order
    assert second.features[other_number] == other[other_number]


# -- join ------------------------------------------------------------------------------


def test_feedback_joins_by_request_id_and_by_record_id() -> None:
    predictions = [
        _prediction("r1", "0001-AAAAA", at=T0),
        _prediction("r2", "0002-BBBBB", at=T0),
        _prediction("r3", "0002-BBBBB", at=T0 + timedelta(days=2)),
        _prediction("r4", "0002-BBBBB", at=T0 + timedelta(days=40)),  # after the outcome
    ]
    feedback = [
        _feedback(True, request_id="r1"),
        _feedback(False, record_id="0002-BBBBB"),
        _feedback(True, request_id="nope"),
    ]
    result = join(predictions, feedback)
    assert [(x.prediction.request_id, x.outcome, x.matched_by) for x in result.labelled] == [
        ("r1", True, "request_id"),
        ("r3", False, "id"),  # the latest prediction before observed_at
    ]
    assert (result.unmatched, result.ambiguous, result.superseded) == (1, 0, 0)


def test_a_batch_request_needs_the_record_id_too() -> None:
    predictions = [_prediction("batch", "0001-AAAAA"), _prediction("batch", "0002-BBBBB")]
    result = join(
        predictions,
        [
            _feedback(True, request_id="batch"),
            _feedback(False, request_id="batch", record_id="0002-BBBBB"),
        ],
    )
    assert [(x.prediction.id, x.outcome) for x in result.labelled] == [("0002-BBBBB", False)]
    assert result.ambiguous == 1


def test_the_first_received_outcome_wins_and_later_ones_are_corrections() -> None:
    predictions = [_prediction("r1", "0001-AAAAA")]
    early, late = T0 + timedelta(days=1), T0 + timedelta(days=2)
    by_request = _feedback(True, request_id="r1", received=early)
    by_id_later = _feedback(False, record_id="0001-AAAAA", received=late)
    result = join(predictions, [by_request, by_id_later])
    assert [(x.outcome, x.matched_by, x.corrections) for x in result.labelled] == [
        (True, "request_id", 1)
    ]
    assert (result.superseded, result.corrections) == (1, 1)

    correction = _feedback(False, request_id="r1", received=late)
    repeat = _feedback(True, record_id="0001-AAAAA", received=late)
    result = join(predictions, [correction, repeat, by_request])  # file order is not used
    assert [x.outcome for x in result.labelled] == [True]
    assert (result.superseded, result.corrections) == (2, 1)


# -- figures and the verdict -----------------------------------------------------------


def test_roc_auc_matches_scikit_learn_with_ties() -> None:
    scores = [0.1, 0.4, 0.4, 0.35, 0.8, 0.8, 0.8, 0.2, 0.9, 0.05]
    labels = [False, True, False, True, True, False, True, False, True, False]
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    assert roc_auc([0.1, 0.2], [True, True]) is None


def test_precision_recall_and_windows() -> None:
    predictions = [
        _prediction(f"r{i}", at=T0 + timedelta(days=i), score=score)
        for i, score in enumerate([0.9, 0.8, 0.2, 0.6, 0.1, 0.7, 0.3, 0.95])
    ]
    outcomes = [True, False, True, True, False, True, False, True]
    feedback = [_feedback(c, request_id=f"r{i}") for i, c in enumerate(outcomes)]
    labelled = join(predictions, feedback).labelled
    whole = figures(labelled, T0, T0 + timedelta(days=8))
    # flagged (>= 0.5): r0 r1 r3 r5 r7, of which r1 was negative; positive: r0 r2 r3 r5 r7
    assert (whole.flagged, whole.positives) == (5, 5)
    assert whole.precision == pytest.approx(4 / 5)
    assert whole.recall == pytest.approx(4 / 5)
    series = windows(labelled, days=3)
    assert [w.labelled for w in series] == [2, 3, 3]  # newest window ends at the newest
    assert sum(w.labelled for w in series) == 8


def _card(sha: str = SHA) -> ModelCard:
    return ModelCard(
        sha256="s",
        onnx_sha256=sha,
        onnx_max_abs_diff=0.0,
        estimator="logistic_regression",
        threshold=0.5,
        params={},
        features=[],
        data={},
        metrics={"cv_roc_auc": 0.85},
        reference={},
    )


MONITORING = MonitoringParams(
    window_days=7,
    min_labelled=20,
    max_roc_auc_drop=0.05,
    max_precision_drop=0.1,
    max_recall_drop=0.1,
)
BASELINE = {"roc_auc": 0.84, "precision": 0.66, "recall": 0.56}


def _scored(good: bool, n: int = 40) -> tuple[list[PredictionRecord], list[FeedbackRecord]]:
    """n predictions whose scores rank the outcomes perfectly (good) or backwards."""
    predictions, feedback = [], []
    for i in range(n):
        positive = i % 2 == 0
        score = (0.9 if positive else 0.1) if good else (0.1 if positive else 0.9)
        predictions.append(_prediction(f"r{i}", at=T0 + timedelta(minutes=i), score=score))
        feedback.append(_feedback(positive, request_id=f"r{i}"))
    return predictions, feedback


def test_the_verdict_ok_decayed_or_none() -> None:
    good = run(*_scored(good=True), _card(), BASELINE, MONITORING)
    assert good.verdict == "ok"
    assert not good.decayed
    bad = run(*_scored(good=False), _card(), BASELINE, MONITORING)
    assert bad.verdict == "decayed"
    assert {c.metric for c in bad.checks if c.passed is False} == {"roc_auc", "precision", "recall"}
    assert "DECAYED: roc_auc 0.000 < 0.790" in bad.render()
    few = run(*_scored(good=False, n=10), _card(), BASELINE, MONITORING)
    assert few.verdict == "no_verdict"
    assert "fewer than min_labelled 20" in few.render()
    other_model = run(*_scored(good=False), _card(sha="b" * 64), BASELINE, MONITORING)
    assert (other_model.predictions, other_model.other_models) == (0, 40)
    assert other_model.verdict == "no_verdict"
    assert json.loads(bad.to_json())["verdict"] == "decayed"


def test_the_baseline_must_have_the_metrics(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"roc_auc": 0.8}))
    with pytest.raises(ModelError, match="no precision, recall"):
        read_baseline(path)


def test_churn_performance_exit_codes(tmp_path: Path) -> None:
    from churn.core.params import load_params

    params = load_params(PARAMS).monitoring
    predictions, feedback = _scored(good=False, n=params.min_labelled + 10)
    log_dir = tmp_path / "log"
    log_dir.mkdir()
    (log_dir / "predictions-1.jsonl").write_bytes(_lines(predictions))
    (log_dir / "feedback-1.jsonl").write_bytes(b"".join(encode_feedback(f) for f in feedback))
    card = tmp_path / "card.json"
    _card().write(card)
    out = tmp_path / "out" / "performance.json"
    args = ["performance", "--log-dir", str(log_dir), "--card", str(card)]
    args += ["--metrics", str(REPO / "metrics.json"), "--params", str(PARAMS)]
    result = CliRunner().invoke(app, [*args, "--json", str(out)])
    assert result.exit_code == 1, result.output
    assert "DECAYED" in result.output
    assert json.loads(out.read_text())["windows"][-1]["roc_auc"] == 0.0

    missing = CliRunner().invoke(app, [*args[:2], str(tmp_path / "nowhere"), *args[3:]])
    assert missing.exit_code == 2
    assert "not a directory" in missing.output


# -- settings --------------------------------------------------------------------------


def test_settings_empty_directory_is_off_and_s3_needs_a_spool(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CHURN_PREDICTION_LOG_DIR", "")
    assert ServingSettings().prediction_log_dir is None
    monkeypatch.setenv("CHURN_PREDICTION_LOG_S3_URI", "s3://bucket/prefix")
    with pytest.raises(ValidationError, match="needs CHURN_PREDICTION_LOG_DIR"):
        ServingSettings()
    monkeypatch.setenv("CHURN_PREDICTION_LOG_DIR", "/tmp/x")
    monkeypatch.setenv("CHURN_PREDICTION_LOG_S3_URI", "https://bucket")
    with pytest.raises(ValidationError, match=r"s3://<bucket>"):
        ServingSettings()
    monkeypatch.delenv("CHURN_PREDICTION_LOG_S3_URI")
    monkeypatch.setenv("CHURN_PREDICTION_LOG_BATCH", "20000")
    with pytest.raises(ValidationError, match="must not exceed CHURN_PREDICTION_LOG_BUFFER"):
        ServingSettings()


def test_s3_without_boto3_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # what an image without boto3 sees
    with pytest.raises(PredictionLogError, match="boto3 is not installed"):
        s3_client()


def test_iter_records_counts_files(tmp_path: Path) -> None:
    (tmp_path / "predictions-1.jsonl").write_bytes(_lines([_prediction("a")]))
    (tmp_path / "predictions-2.jsonl").write_bytes(_lines([_prediction("b")]))
    (tmp_path / "feedback-1.jsonl").write_bytes(encode_feedback(_feedback(True, "a")))
    stats = ReadStats()
    assert len(list(iter_records(tmp_path, PREDICTIONS, PredictionRecord, stats))) == 2
    assert (stats.files, stats.records, stats.cut_off) == (2, 2, [])
