"""A scoring run in numbers: counts, the score distribution, the features' bin counts.

Written as JSON next to the output (``<output>.summary.json``) for the
monitoring jobs. Its parts have the shapes the monitoring code already
reads:

- ``features`` is a `churn.monitoring.drift.ReferenceProfile` of the scored
  rows, on the bins of the model's own drift profile (the training split's):
  ``compare_counts(training_profile, {f.name: f.counts})`` is the drift
  check of the scored population, without rereading it;
- ``drift`` is that comparison's result (`DriftResult.to_dict`, what
  ``churn drift --json`` writes), when the model has a drift profile;
- ``scores`` is the probability histogram on ten equal bins of [0, 1],
  with the share flagged (``decision``), as the service's score metric
  buckets them.

Counting is vectorised per chunk and adds up exactly, so the summary of a
run in chunks is the summary of the whole file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from churn.monitoring.drift import FeatureProfile, ReferenceProfile, compare_counts

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

    from churn.monitoring.drift import ModelDriftProfile

SCORE_EDGES = tuple(round(0.1 * i, 1) for i in range(11))


def score_counts(probabilities: np.ndarray) -> np.ndarray:
    """Counts per tenth of [0, 1] (1.0 itself in the last bin)."""
    index = np.clip((np.asarray(probabilities) * 10).astype(np.int64), 0, 9)
    return np.bincount(index, minlength=10).astype(np.int64)


def feature_counts(feature: FeatureProfile, values: pd.Series) -> np.ndarray:
    """Counts of checked ``values`` on ``feature``'s bins (vectorised for levels too)."""
    if feature.kind == "numeric":
        return feature.bin_counts(values.to_numpy(dtype=np.float64, na_value=np.nan))
    import pandas as pd

    codes = pd.Categorical(values, categories=list(feature.levels)).codes
    if feature.missing:  # a nullable column's last bin holds its missing values
        codes = np.where(values.isna().to_numpy(), len(feature.levels), codes)
    if (codes < 0).any():  # cannot happen after the row checks; say so if it does
        raise ValueError(f"{feature.name}: a value outside its levels reached the summary")
    return np.bincount(codes, minlength=len(feature.counts)).astype(np.int64)


@dataclass
class Summary:
    """Running totals of one scoring run; `add` per chunk, `to_dict` at the end."""

    source: str
    output: str
    rejects: str
    model: dict[str, Any]
    profile: ModelDriftProfile | None
    read: int = 0
    scored: int = 0
    rejected: int = 0
    flagged: int = 0
    probability_sum: float = 0.0
    scores: np.ndarray = field(default_factory=lambda: np.zeros(10, dtype=np.int64))
    bins: dict[str, np.ndarray] = field(default_factory=dict)

    def add(
        self,
        probabilities: np.ndarray,
        decisions: np.ndarray,
        rejected: int,
        numbers: dict[str, np.ndarray],
        codes: dict[str, np.ndarray],
    ) -> None:
        """Count one chunk: its scores, and its scored rows' features (``numbers`` as
        float64, ``codes`` as positions among the contract's levels, the profile's bins)."""
        self.read += len(probabilities) + rejected
        self.scored += len(probabilities)
        self.rejected += rejected
        self.flagged += int(np.count_nonzero(decisions))
        self.probability_sum += float(np.sum(probabilities))
        self.scores += score_counts(probabilities)
        if self.profile is None or not len(probabilities):
            return
        for feature in self.profile.reference.features:
            if feature.kind == "numeric":
                counts = feature.bin_counts(numbers[feature.name])
            else:
                counts = np.bincount(codes[feature.name], minlength=len(feature.counts))
                counts = counts.astype(np.int64)
            previous = self.bins.get(feature.name)
            self.bins[feature.name] = counts if previous is None else previous + counts

    def merge_counts(self, other: Summary) -> None:
        """Add another partial summary's totals (the Spark job sums its partitions' ones)."""
        self.read += other.read
        self.scored += other.scored
        self.rejected += other.rejected
        self.flagged += other.flagged
        self.probability_sum += other.probability_sum
        self.scores += other.scores
        for name, counts in other.bins.items():
            previous = self.bins.get(name)
            self.bins[name] = counts if previous is None else previous + counts

    def features_profile(self) -> ReferenceProfile | None:
        """The scored rows as a drift profile on the training bins (None: nothing to bin)."""
        if self.profile is None or not self.scored:
            return None
        features = []
        for feature in self.profile.reference.features:
            counts = tuple(int(c) for c in self.bins[feature.name])
            features.append(feature.model_copy(update={"counts": counts}))
        return ReferenceProfile(rows=self.scored, features=tuple(features))

    def to_dict(self) -> dict[str, Any]:
        profile = self.features_profile()
        drift = None
        if profile is not None and self.profile is not None:
            result = compare_counts(
                self.profile.reference,
                {f.name: f.counts for f in profile.features},
                self.profile.params,
                sources=("training split (the model's drift profile)", self.source),
            )
            drift = result.to_dict()
        return {
            "input": self.source,
            "output": self.output,
            "rejects": self.rejects,
            "model": self.model,
            "rows": {"read": self.read, "scored": self.scored, "rejected": self.rejected},
            "scores": {
                "edges": list(SCORE_EDGES),
                "counts": [int(c) for c in self.scores],
                "flagged": self.flagged,
                "mean": self.probability_sum / self.scored if self.scored else None,
            },
            "features": None if profile is None else profile.model_dump(mode="json"),
            "drift": drift,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def render(self) -> str:
        """The run in a few lines, for the terminal and the job summary."""
        share = f" ({self.rejected / self.read:.2%})" if self.read else ""
        lines = [
            f"read {self.read:,} rows: scored {self.scored:,}, rejected {self.rejected:,}{share}",
            f"flagged {self.flagged:,} (probability >= {self.model['threshold']})",
            f"model {self.model['version']} sha256 {self.model['sha256']}",
        ]
        data = self.to_dict()
        if data["drift"] is not None:
            drifted = data["drift"]["drifted_features"]
            verdict = "DRIFT" if data["drift"]["drift"] else "no drift"
            lines.append(
                f"drift vs the training split: {verdict}"
                + (f" ({', '.join(drifted)})" if drifted else "")
            )
        return "\n".join(lines)


def read_summary(path: Path) -> dict[str, Any]:
    """A summary file as a dict (the workflow's job summary reads it)."""
    data: dict[str, Any] = json.loads(path.read_text())
    return data
