"""The load test's pure parts: locust stats to percentiles, the SLO verdict, the workload.

No server and no network: the stats are small fixtures in the shape of
locust's ``--json-file`` output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from churn.core.domain import Domain
from churn.core.params import LoadtestParams
from churn.serving import schemas
from loadtest import run
from loadtest.run import (
    merge,
    parse_stats,
    percentile,
    render_table,
    slo_violations,
    table,
)
from loadtest.workload import batch_problem, prediction_problem, record_pool
from tests.support.paths import raw_files

SLO = LoadtestParams(users=2, spawn_rate=1, duration_s=10, max_p99_ms=100, max_error_rate=0.0)


def _entry(
    name: str, times: dict[int, int], failures: int = 0, start: float = 1000.0
) -> dict[str, Any]:
    """One endpoint as locust writes it: histogram keys are strings in JSON."""
    requests = sum(times.values())
    return {
        "name": name,
        "method": "POST",
        "num_requests": requests,
        "num_none_requests": 0,
        "num_failures": failures,
        "total_response_time": float(sum(ms * n for ms, n in times.items())),
        "max_response_time": float(max(times)),
        "min_response_time": float(min(times)),
        "response_times": {str(ms): n for ms, n in times.items()},
        "start_time": start,
        "last_request_timestamp": start + 10.0,
    }


def _stats(*entries: dict[str, Any]) -> list[dict[str, Any]]:
    loaded: list[dict[str, Any]] = json.loads(json.dumps(list(entries)))  # as read from the file
    return loaded


# 90 fast single predictions and 10 slower batches: 100 requests in 10 s.
HEALTHY = _stats(
    _entry("/predict", {5: 50, 6: 30, 8: 10}),
    _entry("/predict/batch", {9: 5, 12: 4, 40: 1}),
)


def test_percentile_is_nearest_rank() -> None:
    histogram = {float(ms): 1 for ms in range(1, 101)}  # 1..100 ms, once each
    assert percentile(histogram, 0.50) == 50
    assert percentile(histogram, 0.99) == 99  # not 100: 0.99 * 100 is exactly rank 99
    assert percentile(histogram, 1.0) == 100
    assert percentile({7.0: 3}, 0.01) == 7


def test_percentile_weights_by_count() -> None:
    assert percentile({1.0: 98, 50.0: 1, 300.0: 1}, 0.99) == 50
    assert percentile({1.0: 98, 50.0: 1, 300.0: 1}, 0.995) == 300


@pytest.mark.parametrize(("histogram", "fraction"), [({}, 0.5), ({1.0: 1}, 0.0), ({1.0: 1}, 1.5)])
def test_percentile_rejects_nonsense(histogram: dict[float, int], fraction: float) -> None:
    with pytest.raises(ValueError):
        percentile(histogram, fraction)


def test_table_has_one_row_per_endpoint_then_all() -> None:
    rows = table(parse_stats(HEALTHY))
    assert [r.name for r in rows] == ["POST /predict", "POST /predict/batch", "all"]
    overall = rows[-1]
    assert (overall.requests, overall.failures, overall.error_rate) == (100, 0, 0.0)
    assert overall.requests_per_s == pytest.approx(10.0)
    assert overall.p50_ms == 5
    assert overall.p99_ms == 12  # 99th of 100: the last batch (40 ms) is the 100th
    assert overall.max_ms == 40
    assert overall.avg_ms == pytest.approx((250 + 180 + 80 + 45 + 48 + 40) / 100)
    assert rows[1].p99_ms == 40  # 99th of 10 batches is the 10th
    assert "POST /predict/batch" in render_table(rows)


def test_merge_spans_the_widest_window() -> None:
    early = _entry("/predict", {5: 10}, start=1000.0)
    late = _entry("/predict/batch", {5: 10}, start=1005.0)
    merged = merge(parse_stats(_stats(early, late)))
    assert (merged.start_s, merged.last_request_s) == (1000.0, 1015.0)
    assert merged.histogram == {5.0: 20}


def test_healthy_run_meets_the_slo() -> None:
    assert slo_violations(table(parse_stats(HEALTHY))[-1], SLO) == []


def test_a_single_failure_breaks_a_zero_error_slo() -> None:
    stats = _stats(_entry("/predict", {5: 99}, failures=1), _entry("/predict/batch", {9: 1}))
    [violation] = slo_violations(table(parse_stats(stats))[-1], SLO)
    assert "max_error_rate" in violation
    assert "1 of 100" in violation
    assert "1.000%" in violation


def test_errors_within_the_allowed_rate_pass() -> None:
    stats = _stats(_entry("/predict", {5: 100}, failures=1))
    lenient = SLO.model_copy(update={"max_error_rate": 0.01})
    assert slo_violations(table(parse_stats(stats))[-1], lenient) == []


def test_a_slow_tail_breaks_the_p99_slo() -> None:
    stats = _stats(_entry("/predict", {5: 90, 150: 10}))
    [violation] = slo_violations(table(parse_stats(stats))[-1], SLO)
    assert "max_p99_ms = 100 ms" in violation
    assert "150 ms" in violation


def test_p99_exactly_at_the_limit_passes() -> None:
    stats = _stats(_entry("/predict", {5: 99, 100: 1}), _entry("/predict", {100: 1}))
    assert slo_violations(table(parse_stats(stats))[-1], SLO) == []


def test_no_requests_is_an_error_not_a_pass() -> None:
    with pytest.raises(ValueError, match="no requests"):
        table(parse_stats([]))


def test_the_pool_is_valid_request_bodies(domain: Domain) -> None:
    api = schemas.build(domain.contract)
    pool = record_pool(raw_files(), domain, size=50, seed=0)
    assert pool[0] == api.example
    assert len(pool) == 51
    assert len({record[api.id_field] for record in pool[1:]}) == 50  # drawn without repeats
    for record in pool:  # strict, as the API parses it: an int sent as 1.0 would fail
        api.Record.model_validate_json(json.dumps(record))


@pytest.mark.parametrize(
    ("status", "body", "wanted"),
    [
        (200, '{"probability": 0.25}', None),
        (200, '{"probability": 0}', None),
        (200, '{"probability": 1.5}', "outside [0, 1]"),
        (200, '{"probability": "0.3"}', "not a number"),
        (200, '{"decision": true}', "not a number"),
        (200, "not json", "not JSON"),
        (200, "[0.2]", "not a JSON object"),
        (422, '{"detail": []}', "HTTP 422"),
        (0, None, "no HTTP response"),
    ],
)
def test_prediction_checks(status: int, body: str | None, wanted: str | None) -> None:
    problem = prediction_problem(status, body)
    if wanted is None:
        assert problem is None
    else:
        assert problem is not None
        assert wanted in problem


def test_batch_checks() -> None:
    good = json.dumps({"predictions": [{"probability": 0.1}] * 3})
    assert batch_problem(200, good, expected=3) is None
    assert batch_problem(200, good, expected=4) == "3 predictions for 4 records"
    bad = json.dumps({"predictions": [{"probability": 0.1}, {"probability": -1}]})
    assert "predictions[1]" in (batch_problem(200, bad, expected=2) or "")
    assert "no predictions list" in (batch_problem(200, "{}", expected=1) or "")
    assert batch_problem(503, "model not loaded", expected=1) == "HTTP 503: model not loaded"


def test_without_a_model_it_says_run_make_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(run, "MODEL_FILE", run.REPO / "models" / "absent.onnx")
    assert run.main(["--out", str(tmp_path)]) == run.EXIT_CANNOT_RUN
    assert "run `make demo` first" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing started, nothing written
