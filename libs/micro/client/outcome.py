"""What a finished attempt tells the balancer about the endpoint that served it."""

from __future__ import annotations

import grpc

from micro.errors import Exhausted, ServiceError

# The endpoint (not the request) is at fault: these steer traffic away from it. A
# NOT_FOUND or INVALID_ARGUMENT is a correct answer from a healthy endpoint.
_ENDPOINT_FAULTS = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)


def counts_as_failure(error: grpc.RpcError) -> bool:
    """Whether a failed attempt counts against its endpoint: UNAVAILABLE,
    DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, and RESOURCE_EXHAUSTED from a shedding
    server (cause OVERLOADED); a rate limit or size limit is about the request."""
    code = error.code() if callable(getattr(error, "code", None)) else grpc.StatusCode.UNKNOWN
    if code in _ENDPOINT_FAULTS:
        return True
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        return ServiceError.from_rpc_error(error).cause is Exhausted.LOAD
    return False
