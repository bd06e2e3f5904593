"""Request and response models. The customer model is derived from the contract.

Field names are the contract's columns in snake_case; categorical fields only
accept the contract's levels (an ``enum`` in the OpenAPI schema), numbers
its ranges, and the cross-field rules hold. Validation is strict: a number
sent as a string, or a field the contract does not know, is a 422, not a
guess.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from churn import contract

API_NAMES = {column: contract.api_name(column) for column in contract.feature_names()}
NUMERIC_FIELDS = tuple(contract.api_name(column) for column in contract.numeric_names())
CATEGORICAL_FIELDS = tuple(contract.api_name(column) for column in contract.categorical_names())


class _CustomerRules(BaseModel):
    """The contract's cross-field rules, checked after the per-field ones."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="after")
    def _cross_field_rules(self) -> _CustomerRules:
        for rule in contract.IMPLICATIONS:
            when = contract.api_name(rule.when)
            condition = getattr(self, when) == rule.when_value
            for column in rule.then:
                then = contract.api_name(column)
                if (getattr(self, then) == rule.then_value) != condition:
                    raise ValueError(
                        f"{then} must be {rule.then_value!r} exactly when "
                        f"{when} is {rule.when_value!r}"
                    )
        return self


def _customer_fields() -> dict[str, Any]:
    fields: dict[str, Any] = {
        contract.api_name(contract.ID_COLUMN): (
            str | None,
            Field(default=None, pattern=contract.ID_PATTERN, description="Optional, for tracing."),
        )
    }
    for num in contract.NUMERIC_FEATURES:
        kind: type = int if num.kind == "int" else float
        fields[API_NAMES[num.name]] = (
            kind,
            Field(ge=num.min_value, le=num.max_value, description=num.description),
        )
    for cat in contract.CATEGORICAL_FEATURES:
        fields[API_NAMES[cat.name]] = (Literal[cat.levels], Field(description=cat.description))
    return fields


EXAMPLE = {contract.api_name(column): value for column, value in contract.EXAMPLE.items()}

if TYPE_CHECKING:
    Customer = _CustomerRules
else:
    Customer = create_model(
        "Customer",
        __base__=_CustomerRules,
        __doc__="One customer, as the data contract describes them.",
        **_customer_fields(),
    )
    Customer.model_config["json_schema_extra"] = {"examples": [EXAMPLE]}
    Customer.model_rebuild(force=True)


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    customers: list[Customer] = Field(min_length=1)


class Prediction(BaseModel):
    churn_probability: float = Field(ge=0, le=1, description="P(churn) from the model.")
    churn: bool = Field(description="churn_probability >= threshold.")


class _ModelStamp(BaseModel):
    request_id: str
    threshold: float
    model_version: str
    model_sha256: str


class PredictionResponse(Prediction, _ModelStamp):
    pass


class BatchResponse(_ModelStamp):
    predictions: list[Prediction]


class ModelInfo(BaseModel):
    version: str
    source: str
    sha256: str = Field(description="SHA-256 of the served ONNX file.")
    pipeline_sha256: str = Field(description="SHA-256 of the scikit-learn pipeline it exports.")
    estimator: str
    threshold: float
    training_metrics: dict[str, float]
    params: dict[str, Any]
    data: dict[str, Any]
    input_schema: dict[str, Any]


class Problem(BaseModel):
    field: str = Field(description="Dotted path of the offending field, or 'body'.")
    message: str = Field(description="What is wrong, and what is allowed.")
    type: str = Field(description="Machine-readable error type (pydantic's).")


class ValidationProblems(BaseModel):
    """The body of every 422: one entry per problem found."""

    detail: list[Problem]


class HTTPError(BaseModel):
    detail: str


class Status(BaseModel):
    status: Literal["ok", "ready"]
    model_version: str | None = None


def model_inputs(customers: list[Customer]) -> tuple[list[list[float]], list[list[str]]]:
    """Customers as the model's two inputs: rows of numbers, rows of levels (contract order)."""
    numeric = [[getattr(c, name) for name in NUMERIC_FIELDS] for c in customers]
    categorical = [[getattr(c, name) for name in CATEGORICAL_FIELDS] for c in customers]
    return numeric, categorical
