"""Typed errors at the edge, and the one table that maps gRPC codes to HTTP statuses.

Raise `ServiceError(grpc.StatusCode.X, "message", field="userName")` anywhere in a
service, or one of the constructors below (`invalid_argument("userName", "must not be
empty")` names the field once, in the message and as the field): the gRPC server
aborts the call with that code (the field travels as a google.rpc.BadRequest detail),
the HTTP server answers the mapped status with the JSON body `{"code": ...,
"message": ..., "field": ...}`. A `retry_after` becomes the HTTP Retry-After header
(whole seconds) and, over gRPC, the `grpc-retry-pushback-ms` trailer (gRPC's A6 server
pushback) plus the `retry-after` trailer in seconds. RESOURCE_EXHAUSTED says why through
its cause (`too_large`, `rate_limited`, `overloaded`): HTTP 413, 429 or 503, and over
gRPC a google.rpc.ErrorInfo detail. A `grpc.RpcError` from a downstream call maps the
same way (field, cause and retry included), so a gateway passes NOT_FOUND on as 404
without code of its own.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import Message
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
    # Without a cause (grpc's own limits, an older peer): a rate limit, as it always was.
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class Exhausted(enum.Enum):
    """Why RESOURCE_EXHAUSTED; the value is the google.rpc.ErrorInfo reason sent over gRPC."""

    SIZE = "TOO_LARGE"
    RATE = "RATE_LIMITED"
    LOAD = "OVERLOADED"


# RESOURCE_EXHAUSTED's HTTP status by cause: a client can fix a size, wait out a rate,
# or try again elsewhere when the server sheds load.
HTTP_STATUS_BY_CAUSE: dict[Exhausted, int] = {
    Exhausted.SIZE: 413,
    Exhausted.RATE: 429,
    Exhausted.LOAD: 503,
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
    431: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}

# The trailer key under which gRPC carries a serialized google.rpc.Status.
STATUS_DETAILS_KEY = "grpc-status-details-bin"
# The trailer carrying the seconds a client should wait before trying again.
RETRY_AFTER_KEY = "retry-after"
# gRPC's own server pushback (A6): the milliseconds after which a retry is permitted.
PUSHBACK_KEY = "grpc-retry-pushback-ms"
# The ErrorInfo domain of the causes this module sends.
ERROR_DOMAIN = "micro"
# The ErrorInfo reason of a call refused for the calling service's identity.
CALLER_IDENTITY_REFUSED = "CALLER_IDENTITY_REFUSED"
IDENTITY_REFUSED_MESSAGE = "an internal call was refused this service's identity"

INTERNAL_MESSAGE = "internal error"
# A status code by its number (grpc.aio sometimes answers a bare int; stored outcomes
# keep the number).
STATUS_BY_NUMBER: dict[int, grpc.StatusCode] = {code.value[0]: code for code in grpc.StatusCode}


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
        cause: Exhausted | None = None,
    ) -> None:
        if code is grpc.StatusCode.OK:
            raise ValueError("a ServiceError cannot carry StatusCode.OK")
        if cause is not None and code is not grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise ValueError("only RESOURCE_EXHAUSTED carries a cause")
        if not message.isascii():
            # gRPC sends the message as UTF-8: an unpaired surrogate echoed from the
            # caller's input would fail the answer itself, so it goes escaped.
            message = message.encode("utf-8", "backslashreplace").decode()
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after
        self.cause = cause

    def __repr__(self) -> str:
        return f"ServiceError({self.code.name}, {self.message!r}, field={self.field!r})"

    @property
    def http_status(self) -> int:
        if self.cause is not None:
            return HTTP_STATUS_BY_CAUSE[self.cause]
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
        """gRPC trailers: the field (google.rpc.BadRequest) and cause (google.rpc.ErrorInfo)
        as status details, and with a retry_after the pushback and retry-after."""
        retry: tuple[tuple[str, bytes], ...] = ()
        if self.retry_after is not None:
            millis = max(0, math.ceil(self.retry_after.total_seconds() * 1000))
            retry = (
                (PUSHBACK_KEY, str(millis).encode()),
                (RETRY_AFTER_KEY, str(self.retry_after_seconds).encode()),
            )
        details: list[Message] = []
        if self.field is not None:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field=self.field, description=self.message
            )
            details.append(error_details_pb2.BadRequest(field_violations=[violation]))
        reason = self._error_info_reason()
        if reason is not None:
            details.append(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))
        if not details:
            return retry
        status = status_pb2.Status(
            code=self.code.value[0], message=self.message, details=map(_packed, details)
        )
        return ((STATUS_DETAILS_KEY, status.SerializeToString()), *retry)

    def _error_info_reason(self) -> str | None:
        return None if self.cause is None else self.cause.value

    @classmethod
    def from_rpc_error(cls, error: grpc.RpcError) -> ServiceError:
        """The ServiceError a failed downstream call stands for (field, cause and retry)."""
        code: grpc.StatusCode = getattr(error, "code", lambda: grpc.StatusCode.UNKNOWN)()
        message: str = getattr(error, "details", lambda: "")() or code.name.lower()
        trailers: Sequence[tuple[str, str | bytes]] | None = getattr(
            error, "trailing_metadata", lambda: None
        )()
        if code is grpc.StatusCode.OK:
            code = grpc.StatusCode.UNKNOWN
        trailers = trailers or ()
        field, reason = _details_from_trailers(trailers)
        if reason == CALLER_IDENTITY_REFUSED:
            # This service's own identity was refused: its callers' credentials are not
            # at fault, so they must not see a 401 or 403 of their own, nor the internal
            # names in the message (the refusing service logs it).
            return cls(grpc.StatusCode.UNAVAILABLE, IDENTITY_REFUSED_MESSAGE)
        cause = next((c for c in Exhausted if c.value == reason), None)
        return cls(
            code,
            message,
            field=field,
            retry_after=_retry_after_from_trailers(trailers),
            cause=cause if code is grpc.StatusCode.RESOURCE_EXHAUSTED else None,
        )


def _packed(detail: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(detail)
    return packed


def _naming(field: str | None, rule: str) -> str:
    return rule if field is None else f"{field}: {rule}"


def invalid_argument(field: str | None, rule: str) -> ServiceError:
    """INVALID_ARGUMENT "<field>: <rule>" carrying field; without a field, the rule alone."""
    return ServiceError(grpc.StatusCode.INVALID_ARGUMENT, _naming(field, rule), field=field)


def unauthenticated(field: str | None, rule: str) -> ServiceError:
    """UNAUTHENTICATED "<field>: <rule>" carrying field; without a field, the rule alone."""
    return ServiceError(grpc.StatusCode.UNAUTHENTICATED, _naming(field, rule), field=field)


class CallerIdentityRefused(ServiceError):
    """UNAUTHENTICATED or PERMISSION_DENIED for the calling service's identity (not its
    end user's): marked in the status details, so that the caller passes it on as
    UNAVAILABLE rather than as a 401 or 403 of its own user (from_rpc_error)."""

    def _error_info_reason(self) -> str | None:
        return CALLER_IDENTITY_REFUSED


def permission_denied(message: str) -> ServiceError:
    """PERMISSION_DENIED: the caller is known, and may not do this; the message says who
    and what."""
    return ServiceError(grpc.StatusCode.PERMISSION_DENIED, message)


def not_found(message: str, *, field: str | None = None) -> ServiceError:
    """NOT_FOUND; the message names what is missing, the field where the caller named it."""
    return ServiceError(grpc.StatusCode.NOT_FOUND, message, field=field)


def unavailable(message: str, *, retry_after: timedelta | None = None) -> ServiceError:
    """UNAVAILABLE, with the wait after which a retry may succeed when it is known."""
    return ServiceError(grpc.StatusCode.UNAVAILABLE, message, retry_after=retry_after)


def too_large(message: str) -> ServiceError:
    """RESOURCE_EXHAUSTED for a size limit (HTTP 413): repeating the same request fails."""
    return ServiceError(grpc.StatusCode.RESOURCE_EXHAUSTED, message, cause=Exhausted.SIZE)


def rate_limited(message: str, retry_after: timedelta) -> ServiceError:
    """RESOURCE_EXHAUSTED for a rate limit (HTTP 429), retried after `retry_after`."""
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, message, retry_after=retry_after, cause=Exhausted.RATE
    )


def overloaded(message: str, retry_after: timedelta | None = None) -> ServiceError:
    """RESOURCE_EXHAUSTED for load shedding (HTTP 503), retried after `retry_after` if given."""
    return ServiceError(
        grpc.StatusCode.RESOURCE_EXHAUSTED, message, retry_after=retry_after, cause=Exhausted.LOAD
    )


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _is_count(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _retry_after_from_trailers(trailers: Sequence[tuple[str, str | bytes]]) -> timedelta | None:
    """The pushback in milliseconds when sent, else retry-after in seconds (older peers)."""
    values = {key: _text(value) for key, value in trailers}
    if PUSHBACK_KEY in values:
        # A6: a pushback that is not a non-negative integer means "do not retry".
        millis = values[PUSHBACK_KEY]
        return timedelta(milliseconds=int(millis)) if _is_count(millis) else None
    seconds = values.get(RETRY_AFTER_KEY, "")
    return timedelta(seconds=int(seconds)) if _is_count(seconds) else None


def _details_from_trailers(
    trailers: Sequence[tuple[str, str | bytes]],
) -> tuple[str | None, str | None]:
    """The field (first BadRequest violation) and reason (ErrorInfo of our domain) sent."""
    field: str | None = None
    reason: str | None = None
    for key, value in trailers:
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except Exception:  # a malformed detail from a peer must not hide the real error
            return None, None
        for detail in status.details:
            bad_request = error_details_pb2.BadRequest()
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(bad_request) and bad_request.field_violations and field is None:
                field = str(bad_request.field_violations[0].field)
            elif detail.Unpack(info) and info.domain == ERROR_DOMAIN and reason is None:
                reason = str(info.reason)
    return field, reason
