"""A/B tests between the champion and a challenger model.

Two halves, both standard library only so that the service can import the
first without the training stack:

- **Assignment** (`variant_for`): a stable hash of a key (the record's id)
  sends a fixed share of records to the challenger. The same id always gets
  the same variant, in every process and after every restart (SHA-256, not
  Python's salted ``hash``), and changing the salt reshuffles everyone for a
  new experiment.
- **Decision** (`decide`): each variant's outcome is the share of its
  labelled predictions whose decision was right (the decision matched the
  outcome reported later, from the feedback log). A two-sided
  two-proportion z-test at the configured confidence compares them, but only
  once **both** variants reached the sample size that the configured power
  needs to detect the minimum effect worth acting on; before that the answer
  is "no decision yet". Fixing the sample size in advance, and not stopping
  at the first significant peek, is what keeps the false-positive rate at
  ``1 - confidence``.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from enum import StrEnum
from statistics import NormalDist
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from pathlib import Path

    from churn.core.params import ABTestParams

CHAMPION: Final = "champion"
CHALLENGER: Final = "challenger"
_HASH_SPACE = float(2**64)


def variant_for(key: str, challenger_share: float, salt: str) -> str:
    """The variant a key (a record's id) belongs to: stable across processes and restarts."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / _HASH_SPACE  # uniform in [0, 1)
    return CHALLENGER if position < challenger_share else CHAMPION


class Verdict(StrEnum):
    NO_DECISION_YET = "no decision yet"
    CHALLENGER_BETTER = "challenger better"
    CHAMPION_BETTER = "champion better"
    NO_DIFFERENCE = "no significant difference"


@dataclass(frozen=True)
class Arm:
    """One variant's labelled outcomes: `successes` right decisions out of `trials`."""

    name: str
    successes: int
    trials: int

    def __post_init__(self) -> None:
        if not 0 <= self.successes <= self.trials:
            raise ValueError(f"{self.name}: {self.successes} successes out of {self.trials}")

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials else math.nan


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    champion: Arm
    challenger: Arm
    required_per_arm: int
    difference: float  # challenger rate - champion rate
    z: float
    p_value: float
    confidence: float
    ci_low: float  # confidence interval of the difference
    ci_high: float

    def render(self) -> str:
        lines = [
            f"{'variant':<11} {'labelled':>9} {'right':>7} {'rate':>8}",
            *(
                f"{arm.name:<11} {arm.trials:>9} {arm.successes:>7} {arm.rate:>8.4f}"
                for arm in (self.champion, self.challenger)
            ),
            f"needed per variant: {self.required_per_arm} labelled predictions "
            f"(confidence {self.confidence:g})",
        ]
        if self.verdict is not Verdict.NO_DECISION_YET:
            lines.append(
                f"difference {self.difference:+.4f} "
                f"({self.confidence:.0%} CI {self.ci_low:+.4f} to {self.ci_high:+.4f}), "
                f"z {self.z:+.2f}, p {self.p_value:.4g} (two-proportion z-test)"
            )
        lines.append(f"VERDICT: {self.verdict}")
        return "\n".join(lines)


def required_sample_size(
    baseline_rate: float, min_effect: float, confidence: float, power: float
) -> int:
    """Labelled predictions per variant to detect `min_effect` (absolute) with `power`.

    The standard formula for a two-sided two-proportion z-test with equal
    arms, around ``baseline_rate`` (clipped away from 0 and 1 so that a tiny
    pilot cannot make the answer degenerate).
    """
    normal = NormalDist()
    p1 = min(max(baseline_rate, 0.01), 0.99 - min_effect)
    p2 = p1 + min_effect
    pooled = (p1 + p2) / 2
    z_alpha = normal.inv_cdf(1 - (1 - confidence) / 2)
    z_beta = normal.inv_cdf(power)
    numerator = z_alpha * math.sqrt(2 * pooled * (1 - pooled)) + z_beta * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil((numerator / min_effect) ** 2)


def decide(
    champion: Arm, challenger: Arm, *, confidence: float, power: float, min_effect: float
) -> Decision:
    """The A/B verdict for the two arms (see the module's docstring for the rule)."""
    baseline = champion.rate if champion.trials else 0.5
    required = required_sample_size(baseline, min_effect, confidence, power)
    difference = challenger.rate - champion.rate if champion.trials and challenger.trials else 0.0
    if min(champion.trials, challenger.trials) < required:
        return Decision(
            Verdict.NO_DECISION_YET, champion, challenger, required, difference,
            math.nan, math.nan, confidence, math.nan, math.nan,
        )  # fmt: skip
    pooled = (champion.successes + challenger.successes) / (champion.trials + challenger.trials)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / champion.trials + 1 / challenger.trials))
    normal = NormalDist()
    if pooled_se == 0:  # both arms all right or all wrong: no evidence of a difference
        z, p_value = 0.0, 1.0
    else:
        z = difference / pooled_se
        p_value = 2 * (1 - normal.cdf(abs(z)))
    # Unpooled standard error for the interval of the difference (Wald).
    se = math.sqrt(
        champion.rate * (1 - champion.rate) / champion.trials
        + challenger.rate * (1 - challenger.rate) / challenger.trials
    )
    half_width = normal.inv_cdf(1 - (1 - confidence) / 2) * se
    if p_value < 1 - confidence:
        verdict = Verdict.CHALLENGER_BETTER if difference > 0 else Verdict.CHAMPION_BETTER
    else:
        verdict = Verdict.NO_DIFFERENCE
    return Decision(
        verdict, champion, challenger, required, difference, z, p_value, confidence,
        difference - half_width, difference + half_width,
    )  # fmt: skip


# -- from the prediction log ---------------------------------------------------------


@dataclass(frozen=True)
class ShadowComparison:
    """Champion and shadow challenger on the same labelled predictions (paired).

    McNemar's test on the discordant pairs: predictions one model got right
    and the other wrong. Pairs both got right or both got wrong say nothing
    about which is better.
    """

    pairs: int
    champion_right: int
    challenger_right: int
    only_champion_right: int
    only_challenger_right: int
    p_value: float

    def render(self) -> str:
        if not self.pairs:
            return "shadow: no labelled predictions with a shadow score"
        return (
            f"shadow: {self.pairs} labelled records scored by both; right: champion "
            f"{self.champion_right / self.pairs:.4f}, challenger "
            f"{self.challenger_right / self.pairs:.4f}; discordant {self.only_champion_right} "
            f"(champion only) vs {self.only_challenger_right} (challenger only), "
            f"McNemar p {self.p_value:.4g}"
        )


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Two-sided p-value of McNemar's test with continuity correction (chi-square, 1 dof)."""
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    statistic = max(abs(only_a - only_b) - 1, 0) ** 2 / discordant
    return 2 * (1 - NormalDist().cdf(math.sqrt(statistic)))


@dataclass(frozen=True)
class AbReport:
    decision: Decision
    shadow: ShadowComparison
    unlabelled: int

    def render(self) -> str:
        return "\n".join(
            [
                "A/B test: share of right decisions per variant "
                "(labelled predictions from the log joined with POST /feedback)",
                self.decision.render(),
                self.shadow.render(),
                f"predictions without a reported outcome yet: {self.unlabelled}",
            ]
        )


def report(
    labelled: list[tuple[str, bool, bool, bool | None]],
    unlabelled: int,
    *,
    confidence: float,
    power: float,
    min_effect: float,
) -> AbReport:
    """The A/B decision and the shadow comparison from labelled predictions.

    Each item: (variant that answered, its decision, the outcome, the shadow
    challenger's decision or None).
    """
    trials = {CHAMPION: 0, CHALLENGER: 0}
    right = {CHAMPION: 0, CHALLENGER: 0}
    pairs = champion_right = challenger_right = only_champion = only_challenger = 0
    for variant, said, outcome, shadow_said in labelled:
        if variant in trials:
            trials[variant] += 1
            right[variant] += said == outcome
        if shadow_said is not None and variant == CHAMPION:
            pairs += 1
            a, b = said == outcome, shadow_said == outcome
            champion_right += a
            challenger_right += b
            only_champion += a and not b
            only_challenger += b and not a
    verdict = decide(
        Arm(CHAMPION, right[CHAMPION], trials[CHAMPION]),
        Arm(CHALLENGER, right[CHALLENGER], trials[CHALLENGER]),
        confidence=confidence,
        power=power,
        min_effect=min_effect,
    )
    paired = ShadowComparison(
        pairs,
        champion_right,
        challenger_right,
        only_champion,
        only_challenger,
        mcnemar_p(only_champion, only_challenger),
    )
    return AbReport(verdict, paired, unlabelled)


def main(log_dir: Path, params: ABTestParams) -> AbReport:
    """Read the prediction log and the feedback, join them, and `report`."""
    from churn.monitoring.predlog import ReadStats, join, read_feedback, read_predictions

    stats = ReadStats()
    predictions = read_predictions(log_dir, stats)
    joined = join(predictions, read_feedback(log_dir, stats))
    labelled = [
        (
            item.prediction.variant,
            item.prediction.decision,
            item.outcome,
            None if item.prediction.shadow is None else item.prediction.shadow.decision,
        )
        for item in joined.labelled
    ]
    return report(
        labelled,
        len(predictions) - len(labelled),
        confidence=params.confidence,
        power=params.power,
        min_effect=params.min_effect,
    )
