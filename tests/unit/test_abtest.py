"""A/B assignment and decision on simulated traffic where the truth is known."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from churn.core.params import Params
from churn.monitoring import abtest
from churn.monitoring.abtest import (
    CHALLENGER,
    CHAMPION,
    Arm,
    Verdict,
    decide,
    required_sample_size,
    variant_for,
)
from churn.monitoring.predlog import (
    FEEDBACK,
    PREDICTIONS,
    FeedbackRecord,
    PredictionRecord,
    ShadowScore,
    file_name,
)

CONFIDENCE, POWER, MIN_EFFECT = 0.95, 0.8, 0.02
CHAMPION_RATE = 0.80  # share of right decisions, about the model's accuracy


def simulate(rng: random.Random, rate_a: float, rate_b: float, n: int) -> tuple[Arm, Arm]:
    """n labelled predictions per variant, each right with the variant's true rate."""
    right_a = sum(rng.random() < rate_a for _ in range(n))
    right_b = sum(rng.random() < rate_b for _ in range(n))
    return Arm(CHAMPION, right_a, n), Arm(CHALLENGER, right_b, n)


def verdict(rng: random.Random, challenger_rate: float, n: int) -> Verdict:
    champion, challenger = simulate(rng, CHAMPION_RATE, challenger_rate, n)
    return decide(
        champion, challenger, confidence=CONFIDENCE, power=POWER, min_effect=MIN_EFFECT
    ).verdict


def sample_size() -> int:
    """The planned sample, with a margin: the required size is recomputed from the
    champion's observed rate, which sampling noise moves a little."""
    return int(1.1 * required_sample_size(CHAMPION_RATE, MIN_EFFECT, CONFIDENCE, POWER))


def test_assignment_is_stable_and_splits_at_the_share() -> None:
    keys = [f"record-{i}" for i in range(20_000)]
    first = [variant_for(key, 0.2, "exp-1") for key in keys]
    assert first == [variant_for(key, 0.2, "exp-1") for key in keys]  # same key, same variant
    share = first.count(CHALLENGER) / len(keys)
    assert share == pytest.approx(0.2, abs=0.01)
    reshuffled = [variant_for(key, 0.2, "exp-2") for key in keys]
    assert reshuffled != first  # a new salt is a new experiment
    assert {variant_for(key, 0.0, "s") for key in keys} == {CHAMPION}
    assert {variant_for(key, 1.0, "s") for key in keys} == {CHALLENGER}


def test_sample_size_grows_as_the_effect_shrinks() -> None:
    big = required_sample_size(CHAMPION_RATE, 0.05, CONFIDENCE, POWER)
    small = required_sample_size(CHAMPION_RATE, 0.01, CONFIDENCE, POWER)
    assert 800 < big < 1_200 and 20_000 < small < 30_000
    assert required_sample_size(CHAMPION_RATE, 0.02, 0.99, POWER) > required_sample_size(
        CHAMPION_RATE, 0.02, CONFIDENCE, POWER
    )


def test_no_decision_before_the_sample_is_large_enough() -> None:
    rng = random.Random(0)
    # Even a large true difference is not called on a few hundred outcomes.
    assert verdict(rng, 0.90, 300) is Verdict.NO_DECISION_YET
    decision = decide(
        Arm(CHAMPION, 0, 0), Arm(CHALLENGER, 0, 0),
        confidence=CONFIDENCE, power=POWER, min_effect=MIN_EFFECT,
    )  # fmt: skip
    assert decision.verdict is Verdict.NO_DECISION_YET
    assert "no decision yet" in decision.render()


@pytest.mark.parametrize(
    ("challenger_rate", "expected"),
    [
        (CHAMPION_RATE + 0.03, Verdict.CHALLENGER_BETTER),
        (CHAMPION_RATE - 0.03, Verdict.CHAMPION_BETTER),
    ],
)
def test_a_real_difference_is_found_most_of_the_time(
    challenger_rate: float, expected: Verdict
) -> None:
    rng = random.Random(1)
    n = sample_size()
    verdicts = [verdict(rng, challenger_rate, n) for _ in range(100)]
    # A 3-point difference with a sample sized for 2 points: power well above 80%.
    assert verdicts.count(expected) >= 90
    wrong_way = (
        Verdict.CHAMPION_BETTER
        if expected is Verdict.CHALLENGER_BETTER
        else (Verdict.CHALLENGER_BETTER)
    )
    assert wrong_way not in verdicts


def test_equal_models_rarely_produce_a_winner() -> None:
    rng = random.Random(2)
    n = sample_size()
    verdicts = [verdict(rng, CHAMPION_RATE, n) for _ in range(400)]
    false_positive_rate = 1 - verdicts.count(Verdict.NO_DIFFERENCE) / len(verdicts)
    # Nominal 5%; with 400 trials the 99.9% binomial band reaches about 9%.
    assert false_positive_rate < 0.09


def test_the_interval_brackets_the_difference() -> None:
    decision = decide(
        Arm(CHAMPION, 5_600, 7_000), Arm(CHALLENGER, 5_950, 7_000),
        confidence=CONFIDENCE, power=POWER, min_effect=MIN_EFFECT,
    )  # fmt: skip
    assert decision.verdict is Verdict.CHALLENGER_BETTER
    assert decision.difference == pytest.approx(0.05)
    assert decision.ci_low < decision.difference < decision.ci_high
    assert decision.ci_low > 0
    assert decision.p_value < 0.001


def test_impossible_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="11 successes out of 10"):
        Arm(CHAMPION, 11, 10)


def test_report_counts_variants_and_pairs_shadow_scores() -> None:
    from churn.monitoring.abtest import report

    labelled = [
        # (variant that answered, its decision, outcome, shadow decision)
        (CHAMPION, True, True, True),  # both right
        (CHAMPION, True, False, False),  # only the shadow right
        (CHAMPION, False, False, True),  # only the champion right
        (CHAMPION, False, True, True),  # only the shadow right
        (CHALLENGER, True, True, None),
    ]
    result = report(labelled, 7, confidence=CONFIDENCE, power=POWER, min_effect=MIN_EFFECT)
    assert (result.decision.champion.trials, result.decision.champion.successes) == (4, 2)
    assert (result.decision.challenger.trials, result.decision.challenger.successes) == (1, 1)
    assert result.decision.verdict is Verdict.NO_DECISION_YET
    shadow = result.shadow
    assert (shadow.pairs, shadow.champion_right, shadow.challenger_right) == (4, 2, 3)
    assert (shadow.only_champion_right, shadow.only_challenger_right) == (1, 2)
    assert "without a reported outcome yet: 7" in result.render()


def test_mcnemar_reacts_to_lopsided_disagreement_only() -> None:
    from churn.monitoring.abtest import mcnemar_p

    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(50, 50) == 1.0
    assert mcnemar_p(30, 70) < 0.001  # 100 disagreements, 70 of them won by one model
    assert 0.05 < mcnemar_p(45, 55) < 0.5


def _write(
    directory: Path, stream: str, records: list[PredictionRecord] | list[FeedbackRecord]
) -> None:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    path = directory / file_name(stream, started, "host", 1, 1, compress=False)
    path.write_text("".join(record.model_dump_json() + "\n" for record in records))


def test_main_reads_decisions_outcomes_and_shadow_scores_from_the_log(
    params: Params, tmp_path: Path
) -> None:
    """The report from a prediction log on disk: who answered, what it decided,
    what happened, and what the shadow challenger would have decided."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    # (variant, decision, shadow decision or None, outcome or None: no feedback yet)
    plan = [
        (CHAMPION, True, False, True),  # only the champion right
        (CHAMPION, False, False, False),  # both right
        (CHAMPION, True, None, False),  # wrong, no shadow score
        (CHALLENGER, True, None, True),  # right
        (CHAMPION, False, True, None),  # no outcome reported
    ]
    predictions, feedback = [], []
    for number, (variant, decision, shadow, outcome) in enumerate(plan):
        time = start + timedelta(minutes=number)
        score = None
        if shadow is not None:
            score = ShadowScore(
                model_version="2", model_sha256="b" * 64, probability=0.5, decision=shadow
            )
        predictions.append(
            PredictionRecord(
                time=time,
                request_id=f"request-{number}",
                id=f"record-{number}",
                model_version="1",
                model_sha256="a" * 64,
                threshold=0.5,
                probability=0.9 if decision else 0.1,
                decision=decision,
                features={},
                variant=variant,
                shadow=score,
            )
        )
        if outcome is not None:
            feedback.append(
                FeedbackRecord(
                    received_at=time + timedelta(days=1),
                    request_id=f"request-{number}",
                    id=None,
                    outcome=outcome,
                    observed_at=time + timedelta(days=1),
                )
            )
    _write(tmp_path, PREDICTIONS, predictions)
    _write(tmp_path, FEEDBACK, feedback)

    result = abtest.main(tmp_path, params.ab_test)

    labelled = sum(outcome is not None for *_, outcome in plan)
    assert result.unlabelled == len(plan) - labelled
    champion, challenger = result.decision.champion, result.decision.challenger
    assert (champion.trials, champion.successes) == (3, 2)
    assert (challenger.trials, challenger.successes) == (1, 1)
    assert (result.shadow.pairs, result.shadow.only_champion_right) == (2, 1)
    assert result.shadow.only_challenger_right == 0
