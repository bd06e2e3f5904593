"""The domain room as a value: the contract, the raw-data repairs and the scenarios.

The machinery never imports the domain room: entry points (CLI commands,
``create_app``, each stage's ``main``) call `load_domain`, which finds it by
name and hands the pieces on as arguments, like the parameters. The default
is the package's own room, ``churn.domain``; ``CHURN_DOMAIN`` names another
one, as a module name or a path to its folder (the test suite drives the
whole path with a synthetic domain this way).

A domain room is a package whose ``__init__`` defines ``DOMAIN = Domain(...)``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from churn.core.contract import Contract, load_contract
from churn.core.errors import ContractError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

DEFAULT_DOMAIN = "churn.domain"
DOMAIN_ENV = "CHURN_DOMAIN"

Repair = Callable[["pd.DataFrame"], "pd.DataFrame"]
Shift = Callable[["pd.DataFrame", "np.random.Generator", float], "pd.DataFrame"]


def no_repair(frame: pd.DataFrame) -> pd.DataFrame:
    """For raw data that needs no repair: the frame as it is."""
    return frame


@dataclass(frozen=True)
class Scenarios:
    """The domain's worked examples, used by the machinery's tests and benchmarks.

    - ``shift(frame, rng, strength)``: a plausible change in the population
      (clean records in, clean and still valid records out); ``strength`` 1.0
      is a shift the drift check must detect, 0.0 changes nothing.
    - ``shifted_features``: the features the drift check must flag after it
      (the shift may move others too, e.g. a total that follows a price).
    - ``weaker_train``: overrides of ``params.yaml``'s ``train`` section that
      give a clearly worse model (one the gate must refuse).
    - ``vocabulary``: words of this domain's prose (besides its column names)
      that the machinery must never spell; the fork test looks for them.
    """

    shift: Shift
    shifted_features: tuple[str, ...]
    weaker_train: dict[str, Any] = field(default_factory=dict)
    vocabulary: tuple[str, ...] = ()


@dataclass(frozen=True)
class Domain:
    """What a fork supplies: the contract, how to repair its raw files, its scenarios."""

    contract: Contract
    repair: Repair = no_repair
    scenarios: Scenarios | None = None

    def __post_init__(self) -> None:
        if self.scenarios is None:
            return
        unknown = set(self.scenarios.shifted_features) - set(self.contract.feature_names)
        if unknown:
            raise ContractError(
                f"scenarios: shifted_features names {sorted(unknown)}, which are not "
                "features of the contract (see the domain room's scenarios.py)"
            )

    @classmethod
    def from_folder(
        cls, folder: Path, repair: Repair = no_repair, scenarios: Scenarios | None = None
    ) -> Domain:
        """The domain whose contract is ``folder/contract.yaml``."""
        return cls(load_contract(folder / "contract.yaml"), repair, scenarios)


def load_domain(location: str | None = None) -> Domain:
    """The domain at ``location`` (a module name or a folder), else ``$CHURN_DOMAIN``,
    else the package's own room. Raises `ContractError` naming what is wrong."""
    where = location or os.environ.get(DOMAIN_ENV) or DEFAULT_DOMAIN
    module = _import(where)
    domain = getattr(module, "DOMAIN", None)
    if not isinstance(domain, Domain):
        raise ContractError(f"{where}: defines no DOMAIN = Domain(...) in its __init__.py")
    return domain


def _import(where: str) -> Any:
    folder = Path(where)
    if folder.is_dir():
        init = folder / "__init__.py"
        name = f"_churn_domain_{abs(hash(folder.resolve()))}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(
            name, init, submodule_search_locations=[str(folder)]
        )
        if spec is None or spec.loader is None or not init.is_file():
            raise ContractError(f"{where}: a domain folder needs an __init__.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise ContractError(f"{where}: no such domain module or folder ({exc.name})") from None
