"""Request and response models. The record models are built from the contract.

`build` derives, once per app, the models that depend on the domain: the
record (`Schemas.Record`), the batch request and the feedback. Field names
are the contract's columns in snake_case (`churn.core.contract.api_name`);
categorical fields only accept the contract's levels (an ``enum`` in the
OpenAPI schema), numbers its ranges, and the cross-field rules hold. A
field of a column the contract lets be blank (``max_missing``) accepts
``null`` but is still required; every other field refuses ``null``.
Validation is strict: a number sent as a string, or a field the contract
does not know, is a 422, not a guess.

The other models (answers, model slots, errors) are the same for every
domain and live at module level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from churn.core.artifacts import MODEL_URI_PATTERN
from churn.core.contract import MISSING_LEVEL, Implication, api_name
from churn.core.errors import ContractError

if TYPE_CHECKING:
    from collections.abc import Callable

    from churn.core.contract import Contract

# Request ids are server-made (churn.serving.limits); a client's X-Request-ID is kept
# beside them as X-Client-Request-ID when it matches. Both end up in logs and file lines.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
MAX_CLOCK_SKEW = timedelta(minutes=5)
# Feedback fields besides the record's id: the id's API name must not be one of them.
FEEDBACK_FIELDS = ("request_id", "outcome", "observed_at", "received_at", "status")


def _ascii(value: str) -> str:
    # The contract's pattern is ASCII already (`churn.core.contract.ascii_pattern`);
    # this also holds for a pattern whose '.' or literal would admit other characters.
    if not value.isascii():
        raise ValueError("must be ASCII")
    return value


AsciiId = Annotated[str, AfterValidator(_ascii)]
"""A record id: the contract's pattern, and ASCII only (ids join logs and pick variants)."""


class RecordBase(BaseModel):
    """What every record model shares: strict, frozen, and the contract's cross-field rules."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    rules: ClassVar[tuple[Implication, ...]] = ()
    """The contract's cross-field rules, with API (snake_case) field names."""

    @model_validator(mode="after")
    def _cross_field_rules(self) -> Self:
        for rule in self.rules:
            for name in rule.then:
                when, then = getattr(self, rule.when), getattr(self, name)
                if when is None or then is None:
                    continue  # a rule does not apply to a blank
                if rule.broken_by(when, then):
                    raise ValueError(f"{name} {rule.requirement}")
        return self


class BatchRequestBase(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    # Narrowed to the domain's record model by `build`.
    records: Sequence[RecordBase]


class FeedbackBase(BaseModel):
    """The true outcome for an earlier prediction, named by request id, record id, or both."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    id_field: ClassVar[str] = "id"

    request_id: str | None = Field(
        default=None,
        pattern=REQUEST_ID_PATTERN,
        description="The request_id of the prediction's response. With a batch request, "
        "give the record's id too.",
    )
    outcome: bool = Field(description="Whether the positive class was observed.")
    observed_at: AwareDatetime | None = Field(
        default=None,
        description="When the outcome was observed, ISO 8601 with a time zone "
        "(default: when the feedback is received).",
    )

    @field_validator("observed_at")
    @classmethod
    def _not_in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:  # 0001-01-01T00:00:00+23:59 is before the first representable UTC time
            value = value.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValueError("out of range: not representable in UTC") from None
        if value > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ValueError("must not be in the future")
        return value

    @model_validator(mode="after")
    def _names_a_prediction(self) -> Self:
        if self.request_id is None and self.record_id is None:
            raise ValueError(f"give request_id or {self.id_field} (or both)")
        return self

    @property
    def record_id(self) -> str | None:
        value: str | None = getattr(self, self.id_field)
        return value


class FeedbackAcceptedBase(BaseModel):
    status: Literal["accepted"] = "accepted"
    request_id: str | None
    outcome: bool
    observed_at: datetime
    received_at: datetime


@dataclass(frozen=True)
class Schemas:
    """The domain's API models and the field names the routes read, built by `build`."""

    contract: Contract  # what they are built from
    Record: type[RecordBase]
    BatchRequest: type[BatchRequestBase]
    Feedback: type[FeedbackBase]
    FeedbackAccepted: type[FeedbackAcceptedBase]
    id_field: str  # the record id's API name, in /predict and /feedback bodies
    numeric_fields: tuple[str, ...]  # the model's numeric input, in contract order
    categorical_fields: tuple[str, ...]  # the model's categorical input, in contract order
    example: dict[str, Any]  # the contract's example record, in API names
    input_schema: dict[str, Any]  # the record's JSON schema, for /model
    _numeric: Callable[[Any], tuple[Any, ...]] = field(init=False, repr=False)
    _categorical: Callable[[Any], tuple[Any, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # Built once: reading a record's inputs is then one C call per input.
        object.__setattr__(self, "_numeric", attributes(self.numeric_fields))
        categorical = attributes(self.categorical_fields)
        if any(c.nullable for c in self.contract.categorical):
            # ONNX strings have no null: a missing level is spelled MISSING_LEVEL.
            # (A missing number is None, which numpy reads as NaN: the model imputes it.)
            plain = categorical

            def categorical(record: Any) -> tuple[Any, ...]:
                return tuple(MISSING_LEVEL if value is None else value for value in plain(record))

        object.__setattr__(self, "_categorical", categorical)

    def model_inputs(
        self, records: Sequence[RecordBase]
    ) -> tuple[list[tuple[float, ...]], list[tuple[str, ...]]]:
        """Records as the model's two inputs: rows of numbers, rows of levels (contract order)."""
        return list(map(self._numeric, records)), list(map(self._categorical, records))


def build(contract: Contract) -> Schemas:
    """The API models of ``contract``; `ContractError` if its id's API name is taken."""
    id_field = api_name(contract.id.name)
    if id_field in FEEDBACK_FIELDS:
        raise ContractError(
            f"id column {contract.id.name}: its API name {id_field!r} is a feedback field"
        )
    record_fields: dict[str, Any] = {
        id_field: (
            AsciiId | None,
            Field(
                default=None,
                pattern=contract.id.pattern,
                description=f"{contract.id.description} Optional: it names the record in "
                "the prediction log and picks its A/B test variant.".strip(),
            ),
        )
    }
    # A nullable column's field is required but may be null: the client sends
    # every key, and says "unknown" explicitly rather than by leaving one out.
    for number in contract.numeric:
        kind: Any = int if number.kind == "int" else float
        record_fields[api_name(number.name)] = (
            kind | None if number.nullable else kind,
            Field(
                ge=number.min_value,
                le=number.max_value,
                description=_nullable(number.description, number.nullable),
            ),
        )
    for category in contract.categorical:
        levels: Any = Literal[category.levels]
        record_fields[api_name(category.name)] = (
            levels | None if category.nullable else levels,
            Field(description=_nullable(category.description, category.nullable)),
        )
    example = contract.api_example()
    record = create_model(
        "Record",
        __base__=RecordBase,
        __doc__=f"One record, as the data contract describes it ({contract.title}).",
        **record_fields,
    )
    record.rules = tuple(
        r.model_copy(update={"when": api_name(r.when), "then": tuple(map(api_name, r.then))})
        for r in contract.implications
    )
    record.model_config["json_schema_extra"] = {"examples": [example]}
    record.model_rebuild(force=True)

    batch = create_model(
        "BatchRequest",
        __base__=BatchRequestBase,
        records=(list[record], Field(min_length=1)),
    )
    id_description = contract.id.description or "The record's id."
    feedback_fields: dict[str, Any] = {
        id_field: (
            AsciiId | None,
            Field(
                default=None,
                pattern=contract.id.pattern,
                description=f"{id_description} Alone, it names the record's latest "
                "prediction before observed_at.",
            ),
        )
    }
    feedback = create_model(
        "Feedback", __base__=FeedbackBase, __doc__=FeedbackBase.__doc__, **feedback_fields
    )
    feedback.id_field = id_field
    feedback.model_config["json_schema_extra"] = {
        "examples": [
            {"request_id": "3f2a9c0d1b7e4e5f8a6b", "outcome": True},
            {id_field: example[id_field], "outcome": False, "observed_at": "2026-10-31T00:00:00Z"},
        ]
    }
    feedback.model_rebuild(force=True)
    accepted_fields: dict[str, Any] = {id_field: (str | None, ...)}
    accepted = create_model("FeedbackAccepted", __base__=FeedbackAcceptedBase, **accepted_fields)
    numeric_fields = tuple(api_name(c) for c in contract.numeric_names)
    categorical_fields = tuple(api_name(c) for c in contract.categorical_names)
    return Schemas(
        contract=contract,
        Record=record,
        BatchRequest=batch,
        Feedback=feedback,
        FeedbackAccepted=accepted,
        id_field=id_field,
        numeric_fields=numeric_fields,
        categorical_fields=categorical_fields,
        example=example,
        input_schema=record.model_json_schema(),
    )


def _nullable(description: str, nullable: bool) -> str:
    if not nullable:
        return description
    return f"{description} May be null (unknown); the key is still required.".strip()


def attributes(names: Sequence[str]) -> Callable[[Any], tuple[Any, ...]]:
    """A function returning the named attributes of an object, always as a tuple
    (`operator.attrgetter`, which returns a bare value for one name)."""
    if len(names) == 1:
        (name,) = names
        return lambda item: (getattr(item, name),)
    if not names:
        return lambda item: ()
    getter: Callable[[Any], tuple[Any, ...]] = attrgetter(*names)
    return getter


# -- the same for every domain ---------------------------------------------------------

Variant = Literal["champion", "challenger"]


class Prediction(BaseModel):
    probability: float = Field(
        ge=0, le=1, description="The model's probability of the positive class."
    )
    decision: bool = Field(description="probability >= threshold.")
    variant: Variant = Field(
        description="Which model answered: the champion (the active model), or the "
        "challenger for the records an A/B test sends to it."
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
                {"model_dir": "/srv/models/2026-11-30"},
                {"model_uri": "models:/classifier@challenger"},
            ]
        },
    )

    model_dir: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        pattern=r"^[^\x00-\x1f]+$",
        description="A directory with model.onnx and model_card.json, as `train` writes it "
        "(a relative path is read from CHURN_ADMIN_MODELS_ROOT; it must stay under it).",
    )
    model_uri: str | None = Field(
        default=None,
        max_length=1024,
        pattern=MODEL_URI_PATTERN,
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
    ab_test: bool = Field(description="The candidate answers a share of the records now.")
    ab_challenger_share: float
    shadow: bool = Field(description="The candidate scores the champion's records now.")
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


def json_route_responses(invalid: str) -> dict[int | str, dict[str, Any]]:
    """The error answers every route with a JSON body documents; ``invalid`` says
    what a 422 refuses. Routes add their own (e.g. 503) beside them."""
    return {
        400: {"model": HTTPError, "description": "Body is not decodable (e.g. not UTF-8)."},
        401: {"model": HTTPError, "description": "Missing or wrong X-API-Key (when required)."},
        413: {"model": HTTPError, "description": "Request body too large."},
        415: {"model": HTTPError, "description": "Body not sent as application/json."},
        422: {"model": ValidationProblems, "description": invalid},
    }


class Status(BaseModel):
    status: Literal["ok", "ready"]
    model_version: str | None = None
