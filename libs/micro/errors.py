"""Typed errors at the edge, and the one table that maps gRPC codes to HTTP statuses.

Raise `ServiceError(grpc.StatusCode.X, "message", field="userName")` anywhere in a
service, or one of the constructors below (`invalid_argument("userName", "must not be
empty")` names the field once, in the message and as the field): the gRPC server
aborts the call with that code (the field travels as a google.rpc.BadRequest detail),
the HTTP server answers the mapped status with the JSON body `{"code": ...,
"message": ..., "field": ...}`. A `retry_after` becomes the HTTP Retry-After header and
the gRPC `retry-after` trailer, in whole seconds. A `grpc.RpcError` from a downstream
call maps the same way (field and retry-after included), so a gateway passes NOT_FOUND
on as 404 without code of its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

# The one mapping from gRPC codes to HTTP statuses; anything else is 500.
HTTP_STATUS_BY_CODE: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

# HTTP statuses the HTTP server itself produces (routing, limits), back to gRPC codes,
# so that its JSON error bodies carry a code name too.
CODE_BY_HTTP_STATUS: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    409: grpc.StatusCode.ALREADY_EXISTS,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

# The trailer key under which gRPC carries a serialized google.rpc.Status.
STATUS_DETAILS_KEY = "grpc-status-details-bin"
# The trailer carrying the seconds a client should wait before trying again.
RETRY_AFTER_KEY = "retry-after"

INTERNAL_MESSAGE = "internal error"


def http_status(code: grpc.StatusCode) -> int:
    """The HTTP status for a gRPC code (500 for anything the table does not name)."""
    return HTTP_STATUS_BY_CODE.get(code, 500)


def code_for_http_status(status: int) -> grpc.StatusCode:
    """The gRPC code for an HTTP error status (UNKNOWN for 4xx, INTERNAL for 5xx otherwise)."""
    code = CODE_BY_HTTP_STATUS.get(status)
    if code is not None:
        return code
    return grpc.StatusCode.UNKNOWN if status < 500 else grpc.StatusCode.INTERNAL


class ServiceError(Exception):
    """An error the caller should see: a gRPC code, a message, and optionally the field."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        *,
        field: str | None = None,
        retry_after: timedelta | None = None,
    ) -> None:
        if code is grpc.StatusCode.OK:
            raise ValueError("a ServiceError cannot carry StatusCode.OK")
        if not message.isascii():
            # gRPC sends the message as UTF-8: an unpaired surrogate echoed from the
            # caller's input would fail the answer itself, so it goes escaped.
            message = message.encode("utf-8", "backslashreplace").decode()
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"ServiceError({self.code.name}, {self.message!r}, field={self.field!r})"

    @property
    def http_status(self) -> int:
        return http_status(self.code)

    def to_json(self) -> dict[str, Any]:
        """The HTTP error body."""
        body: dict[str, Any] = {"code": self.code.name, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body

    @property
    def retry_after_seconds(self) -> int | None:
        """retry_after in whole seconds, at least 1 (the form both protocols carry)."""
        if self.retry_after is None:
            return None
        return max(1, math.ceil(self.retry_after.total_seconds()))

    def http_headers(self) -> dict[str, str]:
        seconds = self.retry_after_seconds
        return {} if seconds is None else {"Retry-After": str(seconds)}

    def trailing_metadata(self) -> tuple[tuple[str, bytes], ...]:
        """gRPC trailers: the field as a google.rpc.BadRequest detail, and retry-after."""
        seconds = self.retry_after_seconds
        retry = () if seconds is None else ((RETRY_AFTER_KEY, str(seconds).encode()),)
        if self.field is None:
            return retry
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=self.field, description=self.message
        )
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        status = status_pb2.Status(code=self.code.value[0], message=self.message, details=[detail])
        return ((STATUS_DETAILS_KEY, status.SerializeToString()), *retry)

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> ServiceError:
        """The ServiceError a failed downstream call stands for (field included)."""
        code: grpc.StatusCode = getattr(error, "code", lambda: grpc.StatusCode.UNKNOWN)()
        message: str = getattr(error, "details", lambda: "")() or code.name.lower()
        trailers: Sequence[tuple[str, str | bytes]] | None = getattr(
            error, "trailing_metadata", lambda: None
        )()
        if code is grpc.StatusCode.OK:
            code = grpc.StatusCode.UNKNOWN
        trailers = trailers or ()
        return cls(
            code,
            message,
            field=_field_from_trailers(trailers),
            retry_after=_retry_after_from_trailers(trailers),
        )


def _naming(field: str | None, rule: str) -> str:
    return rule if field is None else f"{field}: {rule}"


def invalid_argument(field: str | None, rule: str) -> ServiceError:
    """INVALID_ARGUMENT "<field>: <rule>" carrying field; without a field, the rule alone."""
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, _naming(field, rule), field=field)


def unauthenticated(field: str | None, rule: str) -> ServiceError:
    """UNAUTHENTICATED "<field>: <rule>" carrying field; without a field, the rule alone."""
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, _naming(field, rule), field=field)


def not_found(message: str, *, field: str | None = None) -> ServiceError:
    """NOT_FOUND; the message names what is missing, the field where the caller named it."""
    return ServiceError(grpc.StatusCode.NOT_FOUND, message, field=field)


def unavailable(message: str, *, retry_after: timedelta | None = None) -> ServiceError:
    """UNAVAILABLE, with the wait after which a retry may succeed when it is known."""
    return ServiceError(grpc.StatusCode.UNAVAILABLE, message, retry_after=retry_after)


def _retry_after_from_trailers(trailers: Sequence[tuple[str, str | bytes]]) -> timedelta | None:
    for key, value in trailers:
        text = value.decode(errors="replace") if isinstance(value, bytes) else value
        if key == RETRY_AFTER_KEY and text.isascii() and text.isdigit():
            return timedelta(seconds=int(text))
    return None


def _field_from_trailers(trailers: Sequence[tuple[str, str | bytes]]) -> str | None:
    for key, value in trailers:
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:  # a malformed detail from a peer must not hide the real error
            return None
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request) and bad_request.field_violations:
                return str(bad_request.field_violations[0].field)
    return None
