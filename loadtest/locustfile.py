"""Locust load test of the prediction service: ``POST /predict`` and ``/predict/batch``.

Each simulated user sends one request after another, with no think time, so
``users`` is the number of requests in flight. Nine requests in ten score one
record; the tenth scores a batch of `BATCH_SIZE`. Records come from a pool
built once when locust starts (`workload.record_pool`): the contract's
example plus real records from the raw data (``data/raw/*.csv``, read
through the domain's repairs). Every answer must be a 200 whose
probabilities lie in [0, 1]; anything else counts as a failure.

`make loadtest` (loadtest/run.py) starts a server and runs this file with the
settings of params.yaml. To aim it at a server of your own, from the
repository root:

    locust -f loadtest/locustfile.py --headless -u 20 -r 10 -t 20s \\
        --host http://127.0.0.1:8000
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, events, task

from churn.core.domain import load_domain
from churn.serving.records import ApiRecord
from loadtest.workload import batch_problem, prediction_problem, record_pool

RAW_DIR = Path(__file__).resolve().parent.parent / "data" / "raw"
POOL_SIZE = 500
"""Real records in the pool (plus the example): enough variety, built in about a second."""
BATCH_SIZE = 10
SEED = 0

POOL: list[ApiRecord] = []
"""Filled once by `_build_pool` before any user starts; read-only afterwards."""


def _build_pool(**_kwargs: Any) -> None:
    """Build the record pool once per locust process, before users spawn."""
    POOL.extend(record_pool(sorted(RAW_DIR.glob("*.csv")), load_domain(), POOL_SIZE, SEED))


events.init.add_listener(_build_pool)  # type: ignore[no-untyped-call]  # unannotated in locust


class PredictionUser(FastHttpUser):
    """A client of the service that never pauses between requests."""

    wait_time = constant(0)

    def on_start(self) -> None:
        """Each user draws from the shared pool with its own generator."""
        if not POOL:
            raise RuntimeError("the record pool is empty: the init listener did not run")
        self.rng = random.Random()

    @task(9)
    def predict(self) -> None:
        """Score one record."""
        record = self.rng.choice(POOL)
        with self.client.post("/predict", json=record, catch_response=True) as response:
            problem = prediction_problem(response.status_code, response.text)
            if problem is not None:
                response.failure(problem)

    @task(1)
    def predict_batch(self) -> None:
        """Score `BATCH_SIZE` records in one request."""
        records = self.rng.sample(POOL, BATCH_SIZE)
        with self.client.post(
            "/predict/batch", json={"records": records}, catch_response=True
        ) as response:
            problem = batch_problem(response.status_code, response.text, BATCH_SIZE)
            if problem is not None:
                response.failure(problem)
