"""A synthetic domain room: personal loans (see contract.yaml). A fork's room looks like this.

The suite loads it by path (``CHURN_DOMAIN=tests/domains/synthetic``) to run
the machinery on a domain that shares nothing with the example, and
tests/integration/test_fork.py copies it over ``src/churn/domain/`` to prove
that a fork which replaces the room, the raw data and the gate passes the
whole suite. Its data comes from `churn.pipeline.synth.generate`, so its repairs
do nothing. Imports are relative so the folder works wherever it is placed.
"""

from pathlib import Path

from churn.core.domain import Domain, Scenarios

from .repairs import repair
from .scenarios import SHIFTED_FEATURES, VOCABULARY, WEAKER_TRAIN, shift

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
