"""What the HTTP servers' OpenAPI documents declare beyond FastAPI's own: the answers the
framework gives on every route, in the one JSON error body.

Routes declare the statuses their use cases answer with `error_responses(...)`;
`FrameworkAnswers` completes each operation of the document with what the server itself
enforces: 400 where a parameter or body is validated, 413 (body limit), 500 (recovery),
503 (load shed) and 504 (timeout) except on the probes, and under a protected path the
bearer scheme with 401, 403 (when roles are required) and 503 (the verifier's keys
unreachable). FastAPI's 422 goes: the server
answers validation errors 400.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import grpc
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.json_schema import SkipJsonSchema

from micro.auth import AccessPolicy

BEARER_SCHEME = "bearerAuth"
ERROR_SCHEMA = "ErrorBody"  # FastAPI names a model's component after its class
# `openapi_extra=` of a public route that also reads a bearer token when one is sent.
OPTIONAL_BEARER: dict[str, Any] = {"security": [{}, {BEARER_SCHEME: []}]}
# The body's code is the gRPC code name, and any code but OK can reach a client.
ERROR_CODES: list[JsonValue] = [c.name for c in grpc.StatusCode if c is not grpc.StatusCode.OK]


def _drop_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def optional_field(description: str) -> Any:
    """A pydantic field that is left out of the JSON when unset, never sent as null."""
    return Field(default=None, description=description, json_schema_extra=_drop_default)


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer (micro.errors.ServiceError.to_json)."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(
        description="the gRPC status code name", json_schema_extra={"enum": ERROR_CODES}
    )
    message: str = Field(description="what is wrong, naming the field when there is one")
    field: str | SkipJsonSchema[None] = optional_field(
        "the JSON name of the offending field or parameter, when there is one"
    )


RETRY_AFTER = {
    "description": "Seconds to wait before trying again",
    "schema": {"type": "integer", "minimum": 1},
}
WWW_AUTHENTICATE = {
    "description": "Bearer, when the access token is missing or refused",
    "schema": {"type": "string"},
}

DESCRIPTIONS: dict[int, str] = {
    400: "Invalid argument: the message (and field) name the problem",
    401: "The access token is missing, invalid, expired or revoked",
    403: "The token's role may not call this route",
    404: "Not found",
    409: "Already exists",
    413: "The request body is over the server's limit (server.http.max_body_bytes)",
    429: "Too many requests: retry after Retry-After seconds",
    500: "Internal error (logged with its traceback; the body has no detail)",
    503: "Unavailable or shedding load: retry later (after Retry-After seconds when given)",
    504: "The request, or a call it made, ran past its deadline (server.http.timeout)",
}
HEADERS: dict[int, dict[str, dict[str, Any]]] = {
    401: {"WWW-Authenticate": WWW_AUTHENTICATE},
    429: {"Retry-After": RETRY_AFTER},
    503: {"Retry-After": RETRY_AFTER},
}


def label_value_name(what: str, max_length: int = 63) -> dict[str, Any]:
    """The schema of a name in a Kubernetes label value's alphabet (device names), for a
    route that declares a rule another service enforces."""
    return {
        "pattern": "^[A-Za-z0-9._-]+$",
        "minLength": 1,
        "maxLength": max_length,
        "description": f"{what}: 1-{max_length} characters: ASCII letters, digits, '.', '_' or '-'",
    }


def error_response(status: int, description: str | None = None) -> dict[str, Any]:
    """One status of a route's `responses`: the error body, and Retry-After on 429/503."""
    response: dict[str, Any] = {
        "model": ErrorBody,
        "description": description or DESCRIPTIONS.get(status, "Error"),
    }
    if status in HEADERS:
        response["headers"] = HEADERS[status]
    return response


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` of a route for the error statuses its use cases answer."""
    return {status: error_response(status) for status in statuses}


def _error_entry(status: int, description: str | None = None) -> dict[str, Any]:
    """error_response in the document's own form (FastAPI turns `model` into this)."""
    entry: dict[str, Any] = {
        "description": description or DESCRIPTIONS.get(status, "Error"),
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}
        },
    }
    if status in HEADERS:
        entry["headers"] = HEADERS[status]
    return entry


def _validated(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


class FrameworkAnswers:
    """Completes a FastAPI document with the statuses the framework answers (see above).

    `untimed` are paths the timeout never cuts (the probes)."""

    def __init__(self, policy: AccessPolicy, untimed: Iterable[str] = ()) -> None:
        self._policy = policy
        self._untimed = frozenset(untimed)

    def __call__(self, document: dict[str, Any]) -> dict[str, Any]:
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.setdefault(ERROR_SCHEMA, ErrorBody.model_json_schema())
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        bearer = False
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                self._complete(path, operation)
                bearer |= any(BEARER_SCHEME in r for r in operation.get("security", ()))
        if bearer:
            components.setdefault("securitySchemes", {})[BEARER_SCHEME] = {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
            }
        return document

    def _complete(self, path: str, operation: dict[str, Any]) -> None:
        responses: dict[str, Any] = operation.setdefault("responses", {})
        responses.pop("422", None)
        added = [413, 500]
        if _validated(operation):
            added.append(400)
        if path not in self._untimed:  # probes are never shed nor cut
            added += [503, 504]
        rule = self._policy.rule_for(path)
        if rule is not None:
            operation["security"] = [{BEARER_SCHEME: []}]
            added += [401, 503]
            if rule.roles:
                added.append(403)
        for status in added:
            responses.setdefault(str(status), _error_entry(status))
        operation["responses"] = dict(sorted(responses.items()))


def install(app: Any, complete: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Make `app.openapi()` answer FastAPI's document completed by `complete` (once).

    `app` is a FastAPI app, typed Any: replacing its openapi method is FastAPI's own
    documented way to change the document, which mypy refuses on the class type."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate())
        document: dict[str, Any] = app.openapi_schema
        return document

    app.openapi = openapi
