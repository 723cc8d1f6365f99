"""The error constructors name a field once: in the message, as the field, and in the
gRPC BadRequest detail a downstream caller reads back."""

from __future__ import annotations

from datetime import timedelta

import grpc

from micro.errors import (
    ServiceError,
    invalid_argument,
    not_found,
    unauthenticated,
    unavailable,
)
from micro.transport.http import error_response


def _passed_on(error: ServiceError) -> ServiceError:
    """The error as a downstream caller sees it after the gRPC hop."""
    rpc_error = grpc.aio.AioRpcError(
        error.code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*error.trailing_metadata()),
        error.message,
        None,
    )
    return ServiceError.from_rpc_error(rpc_error)


def test_invalid_argument_prefixes_the_field_and_carries_it() -> None:
    error = invalid_argument("userName", "must not be empty")
    assert error.to_json() == {
        "code": "INVALID_ARGUMENT",
        "message": "userName: must not be empty",
        "field": "userName",
    }
    assert error.http_status == 400
    received = _passed_on(error)
    assert (received.code, received.message, received.field) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "userName: must not be empty",
        "userName",
    )


def test_without_a_field_the_rule_is_the_whole_message() -> None:
    error = invalid_argument(None, "request body: not valid JSON")
    assert error.to_json() == {
        "code": "INVALID_ARGUMENT",
        "message": "request body: not valid JSON",
    }
    assert error.trailing_metadata() == ()


def test_unauthenticated_names_the_field_like_invalid_argument() -> None:
    error = unauthenticated("refreshToken", "expired")
    assert (error.code, error.message, error.field) == (
        grpc.StatusCode.UNAUTHENTICATED,
        "refreshToken: expired",
        "refreshToken",
    )
    assert error.http_status == 401
    assert unauthenticated(None, "access token: expired").to_json() == {
        "code": "UNAUTHENTICATED",
        "message": "access token: expired",
    }


def test_not_found_keeps_its_message_and_an_optional_field() -> None:
    assert not_found("no user with id 7").to_json() == {
        "code": "NOT_FOUND",
        "message": "no user with id 7",
    }
    error = not_found("device 'x' not found", field="name")
    assert (error.http_status, error.field) == (404, "name")
    assert _passed_on(error).field == "name"


def test_unavailable_carries_its_retry_after_to_both_protocols() -> None:
    error = unavailable("device-srv is unavailable", retry_after=timedelta(seconds=5))
    assert error.code is grpc.StatusCode.UNAVAILABLE
    assert error_response(error).headers["retry-after"] == "5"
    assert _passed_on(error).retry_after_seconds == 5
    assert unavailable("token keys are unavailable").http_headers() == {}
