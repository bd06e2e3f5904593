"""Request and response models. The customer model is derived from the contract.

Field names are the contract's columns in snake_case; categorical fields only
accept the contract's levels (an ``enum`` in the OpenAPI schema), numbers
its ranges, and the cross-field rules hold. Validation is strict: a number
sent as a string, or a field the contract does not know, is a 422, not a
guess.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from churn import contract

API_NAMES = {column: contract.api_name(column) for column in contract.feature_names()}
NUMERIC_FIELDS = tuple(contract.api_name(column) for column in contract.numeric_names())
CATEGORICAL_FIELDS = tuple(contract.api_name(column) for column in contract.categorical_names())
# A caller's X-Request-ID is kept when it matches; it ends up in logs and file lines.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
MAX_CLOCK_SKEW = timedelta(minutes=5)


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


Variant = Literal["champion", "challenger"]


class Prediction(BaseModel):
    churn_probability: float = Field(ge=0, le=1, description="P(churn) from the model.")
    churn: bool = Field(description="churn_probability >= threshold.")
    variant: Variant = Field(
        description="Which model answered: the champion (the active model), or the "
        "challenger for the customers an A/B test sends to it."
    )


class _ModelStamp(BaseModel):
    request_id: str
    threshold: float
    model_version: str
    model_sha256: str


class PredictionResponse(Prediction, _ModelStamp):
    """One prediction; model_version, model_sha256 and threshold are the answering model's."""


class ModelRef(BaseModel):
    version: str
    sha256: str = Field(description="SHA-256 of its ONNX file.")
    threshold: float


class BatchResponse(_ModelStamp):
    """The champion's version, hash and threshold; ``challenger`` for the rest, if any."""

    predictions: list[Prediction]
    challenger: ModelRef | None = Field(
        default=None,
        description="The model that answered the predictions whose variant is 'challenger' "
        "(absent when there are none).",
    )


class Feedback(BaseModel):
    """The true outcome for an earlier prediction, named by request id, customer id, or both."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        json_schema_extra={
            "examples": [
                {"request_id": "3f2a9c0d1b7e4e5f8a6b", "churned": True},
                {
                    "customer_id": "7590-VHVEG",
                    "churned": False,
                    "observed_at": "2026-10-31T00:00:00Z",
                },
            ]
        },
    )

    request_id: str | None = Field(
        default=None,
        pattern=REQUEST_ID_PATTERN,
        description="The request_id of the prediction's response. With a batch request, "
        "give customer_id too.",
    )
    customer_id: str | None = Field(
        default=None,
        pattern=contract.ID_PATTERN,
        description="The customer. Alone, it names their latest prediction before observed_at.",
    )
    churned: bool = Field(description="Whether the customer left.")
    observed_at: AwareDatetime | None = Field(
        default=None,
        description="When the outcome was observed, ISO 8601 with a time zone "
        "(default: when the feedback is received).",
    )

    @field_validator("observed_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ValueError("must not be in the future")
        return value

    @model_validator(mode="after")
    def _names_a_prediction(self) -> Feedback:
        if self.request_id is None and self.customer_id is None:
            raise ValueError("give request_id or customer_id (or both)")
        return self


class FeedbackAccepted(BaseModel):
    status: Literal["accepted"] = "accepted"
    request_id: str | None
    customer_id: str | None
    churned: bool
    observed_at: datetime
    received_at: datetime


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


class LoadModel(BaseModel):
    """Where to load a model from: a model directory on the server, or the MLflow registry."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        frozen=True,
        json_schema_extra={
            "examples": [
                {"model_dir": "/srv/models/churn-2026-11-30"},
                {"model_uri": "models:/churn-classifier@challenger"},
            ]
        },
    )

    model_dir: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        pattern=r"^[^\x00-\x1f]+$",
        description="A directory with model.onnx and model_card.json, as `train` writes it "
        "(relative paths are from the service's working directory).",
    )
    model_uri: str | None = Field(
        default=None,
        max_length=1024,
        pattern=r"^models:/[^@\s]+@[^@\s]+$",
        description="models:/<name>@<alias> in the MLflow registry (needs mlflow-skinny, "
        "which the container does not have).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> LoadModel:
        if (self.model_dir is None) == (self.model_uri is None):
            raise ValueError("give model_dir or model_uri (exactly one)")
        return self


class SlotModel(BaseModel):
    version: str
    source: str = Field(description="Where it was loaded from (directory or registry URI).")
    sha256: str = Field(description="SHA-256 of its ONNX file.")
    estimator: str
    threshold: float


class SlotsInfo(BaseModel):
    """The two model slots and what traffic the standby gets."""

    active: SlotModel = Field(description="Answers every request (/model describes it).")
    standby: SlotModel | None = Field(description="Loaded beside it, or none.")
    standby_role: Literal["candidate", "previous"] | None = Field(
        description="candidate: loaded, not yet active (switch promotes it); previous: the "
        "model the last switch replaced (rollback restores it)."
    )
    ab_test: bool = Field(description="The candidate answers a share of the customers now.")
    ab_challenger_share: float
    shadow: bool = Field(description="The candidate scores the champion's customers now.")
    loading: bool = Field(description="A model is being loaded into the standby slot.")


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
