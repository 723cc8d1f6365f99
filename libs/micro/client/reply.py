"""The answer of a call to another service, its failure as the ServiceError it stands for."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import grpc

from micro.errors import ServiceError

T = TypeVar("T")


async def reply(call: Awaitable[T]) -> T:
    """`await reply(stub.Get(request))`: adapters use it so that a downstream failure
    passes on with its code, message and field (ServiceError.from_rpc_error)."""
    try:
        return await call
    except grpc.RpcError as error:
        raise ServiceError.from_rpc_error(error) from None
