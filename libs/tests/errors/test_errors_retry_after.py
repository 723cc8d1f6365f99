"""Retry-After travels with a ServiceError: HTTP header, gRPC trailer, and back."""

from __future__ import annotations

from datetime import timedelta

import grpc
import pytest

from micro.errors import RETRY_AFTER_KEY, ServiceError
from micro.transport.http import error_response


def _rpc_error(trailers: tuple[tuple[str, bytes], ...]) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        grpc.StatusCode.UNAVAILABLE,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*trailers),
        "device-srv is down",
        None,
    )


@pytest.mark.parametrize(
    ("wait", "seconds"), [(timedelta(seconds=5), 5), (timedelta(seconds=0.2), 1)]
)
def test_retry_after_is_whole_seconds_at_least_one(wait: timedelta, seconds: int) -> None:
    error = ServiceError(grpc.StatusCode.UNAVAILABLE, "later", retry_after=wait)
    assert error_response(error).headers["retry-after"] == str(seconds)
    assert (RETRY_AFTER_KEY, str(seconds).encode()) in error.trailing_metadata()


def test_no_retry_after_no_header_and_no_trailer() -> None:
    error = ServiceError(grpc.StatusCode.UNAVAILABLE, "later")
    assert "retry-after" not in error_response(error).headers
    assert error.trailing_metadata() == ()


def test_a_downstream_retry_after_passes_through_with_the_field() -> None:
    sent = ServiceError(
        grpc.StatusCode.UNAVAILABLE, "later", field="name", retry_after=timedelta(seconds=7)
    )
    received = ServiceError.from_rpc_error(_rpc_error(sent.trailing_metadata()))
    assert (received.code, received.field, received.retry_after_seconds) == (
        grpc.StatusCode.UNAVAILABLE,
        "name",
        7,
    )


def test_a_malformed_downstream_retry_after_is_ignored() -> None:
    received = ServiceError.from_rpc_error(_rpc_error(((RETRY_AFTER_KEY, b"soon"),)))
    assert received.retry_after is None
    assert received.code is grpc.StatusCode.UNAVAILABLE
