"""The hot route's body handling: one pydantic-core pass in, one out.

FastAPI parses a JSON body with ``json.loads`` after inspecting the content
type, validates the resulting dict, then validates and serialises the
returned model again. On `/predict`, where the model takes ~50 µs, that
machinery is most of the request. Here the body is validated straight from
bytes by ``Model.model_validate_json`` (Rust), the answer is serialised once
with ``model_dump_json``, and the OpenAPI document is kept exact through
``openapi_extra`` and ``response_model``. Errors take FastAPI's own path, so
clients see the same 422 as everywhere else.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect

ModelT = TypeVar("ModelT", bound=BaseModel)


async def parse_json(request: Request, model: type[ModelT]) -> ModelT:
    """The request body validated as ``model``.

    415 unless the body is declared JSON (as FastAPI's own parsing requires),
    422 on malformed JSON or bad fields; a client gone mid-body (or cut off
    by the body-size limit, which has already answered 413) ends quietly.
    """
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send the body as application/json"
        )
    try:
        return model.model_validate_json(await request.body())
    except ClientDisconnect:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the request body was cut off") from None
    except ValidationError as exc:
        errors = [{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from None


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring ``model`` as the operation's required JSON body.

    The models it nests (a batch's records) are written in place: the
    operation's schema must stand alone, it has no ``$defs`` of its own.
    """
    schema = model.model_json_schema()
    schema = _inline(schema, schema.pop("$defs", {}))
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _inline(node: Any, defs: dict[str, Any]) -> Any:
    """``node`` with every ``{"$ref": "#/$defs/Name"}`` replaced by that definition."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inline(value, defs) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline(value, defs) for value in node]
    return node
