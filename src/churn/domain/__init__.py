"""The domain room: everything this fork knows about its data. THIS FOLDER IS YOURS.

- ``contract.yaml``: the data contract (columns, levels, ranges, rules, id,
  label, an example record), from which the machinery derives everything;
- ``repairs.py``: fixes for the raw file's known quirks, applied before
  validation;
- ``scenarios.py``: the example's worked scenarios for tests and benchmarks
  (a realistic drift, a weaker model);
- ``tests/``: behavioural expectations of *this* data and model (replace them
  with yours).

Nothing outside this folder imports it: entry points find it with
`churn.core.domain.load_domain`. See README, "Adapt this template to your data".
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
