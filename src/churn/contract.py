"""The data contract: the one place that says what a customer record looks like.

Everything else is derived from this module: the Great Expectations suite
(`churn.validation`), the feature lists of the model (`churn.model`), the
typed reading of CSV files (`churn.data`), the API request model
(`churn.serving.schemas`) and the MLflow signature (`churn.tracking`).
Change a column here and every consumer follows.

The contract describes the *clean* record, the one the model sees: numbers
are numbers and every yes/no column holds ``"Yes"``/``"No"``. The raw file's
two known quirks (``SeniorCitizen`` stored as 0/1 and a blank ``TotalCharges``
for customers with zero tenure) are repaired by `churn.data.clean` before
validation, so the contract stays a description of good data, not of quirks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

YES_NO: tuple[str, ...] = ("No", "Yes")
NO_PHONE = "No phone service"
NO_INTERNET = "No internet service"


@dataclass(frozen=True)
class Categorical:
    """A text column whose values come from a fixed, ordered set of levels."""

    name: str
    levels: tuple[str, ...]
    description: str


@dataclass(frozen=True)
class Numeric:
    """A numeric column with an inclusive valid range (in the column's unit)."""

    name: str
    kind: Literal["int", "float"]
    min_value: float
    max_value: float
    description: str


@dataclass(frozen=True)
class Implication:
    """A cross-field rule: ``when`` is ``when_value`` exactly when every column
    in ``then`` holds ``then_value`` (no phone line, so no multiple lines)."""

    when: str
    when_value: str
    then: tuple[str, ...]
    then_value: str


ID_COLUMN = "customerID"
ID_PATTERN = r"^\d{4}-[A-Z]{5}$"
LABEL = Categorical("Churn", YES_NO, "Whether the customer left within the last month.")
POSITIVE_LABEL = "Yes"

ADD_ONS: tuple[str, ...] = (
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
)

CATEGORICAL_FEATURES: tuple[Categorical, ...] = (
    Categorical("gender", ("Female", "Male"), "Customer's gender."),
    Categorical("SeniorCitizen", YES_NO, "Aged 65 or over (0/1 in the raw file)."),
    Categorical("Partner", YES_NO, "Has a partner."),
    Categorical("Dependents", YES_NO, "Has dependents."),
    Categorical("PhoneService", YES_NO, "Has a phone line."),
    Categorical("MultipleLines", ("No", "Yes", NO_PHONE), "Has more than one phone line."),
    Categorical("InternetService", ("DSL", "Fiber optic", "No"), "Internet connection type."),
    *(Categorical(name, ("No", "Yes", NO_INTERNET), f"Subscribes to {name}.") for name in ADD_ONS),
    Categorical("Contract", ("Month-to-month", "One year", "Two year"), "Contract term."),
    Categorical("PaperlessBilling", YES_NO, "Receives paperless bills."),
    Categorical(
        "PaymentMethod",
        (
            "Bank transfer (automatic)",
            "Credit card (automatic)",
            "Electronic check",
            "Mailed check",
        ),
        "How the customer pays.",
    ),
)

NUMERIC_FEATURES: tuple[Numeric, ...] = (
    Numeric("tenure", "int", 0, 72, "Months with the company."),
    Numeric("MonthlyCharges", "float", 0, 200, "Current monthly charge, USD."),
    Numeric("TotalCharges", "float", 0, 15_000, "Charges to date, USD (0 for new customers)."),
)

IMPLICATIONS: tuple[Implication, ...] = (
    Implication("PhoneService", "No", ("MultipleLines",), NO_PHONE),
    Implication("InternetService", "No", ADD_ONS, NO_INTERNET),
)

# The label's share of positives must lie in this range: outside it the data
# is almost certainly a wrong extract (a filtered table, a swapped label).
POSITIVE_RATE_RANGE: tuple[float, float] = (0.05, 0.60)


# One real customer (the file's first row, cleaned): the API's documented
# example and a smoke test for every consumer of the contract.
EXAMPLE: dict[str, str | int | float] = {
    "customerID": "7590-VHVEG",
    "tenure": 1,
    "MonthlyCharges": 29.85,
    "TotalCharges": 29.85,
    "gender": "Female",
    "SeniorCitizen": "No",
    "Partner": "Yes",
    "Dependents": "No",
    "PhoneService": "No",
    "MultipleLines": NO_PHONE,
    "InternetService": "DSL",
    "OnlineSecurity": "No",
    "OnlineBackup": "Yes",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "No",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
}


def api_name(column: str) -> str:
    """The snake_case name a column has in JSON APIs: ``customerID`` → ``customer_id``."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", "_", column).lower()


def feature_names() -> list[str]:
    """Model input columns, in the order the model expects them."""
    return [c.name for c in NUMERIC_FEATURES] + [c.name for c in CATEGORICAL_FEATURES]


def categorical_names() -> list[str]:
    return [c.name for c in CATEGORICAL_FEATURES]


def numeric_names() -> list[str]:
    return [c.name for c in NUMERIC_FEATURES]


def all_columns() -> list[str]:
    """Every column of a labelled record (raw file or prepared split)."""
    return [ID_COLUMN, *feature_names(), LABEL.name]


def levels_by_column() -> dict[str, tuple[str, ...]]:
    return {c.name: c.levels for c in (*CATEGORICAL_FEATURES, LABEL)}
