"""What data-srv does: report whether a device is active, asking a device directory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import grpc

from micro.errors import ServiceError

# Codes that mean "device-srv cannot answer right now": worth retrying later.
_UNAVAILABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


@dataclass(frozen=True)
class DeviceReport:
    device: str
    active: bool


class DeviceDirectory(Protocol):
    async def get(self, name: str) -> DeviceReport:
        """The device's state; raises ServiceError (NOT_FOUND, INVALID_ARGUMENT, ...)."""
        ...


class DeviceSrvUnavailable(ServiceError):
    """device-srv could not be reached; the client may retry after `retry_after`."""

    def __init__(self, message: str, retry_after: timedelta) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, message, retry_after=retry_after)


class DeviceDataUseCases:
    def __init__(self, directory: DeviceDirectory, *, retry_after: Callable[[], timedelta]) -> None:
        self._directory = directory
        self._retry_after = retry_after  # read per answer, so a config change applies at once

    async def report(self, name: str) -> DeviceReport:
        """The device's report. device-srv judges the name, so the rule lives in one place."""
        try:
            return await self._directory.get(name)
        except ServiceError as error:
            if error.code in _UNAVAILABLE_CODES:
                raise DeviceSrvUnavailable(
                    f"device-srv is unavailable: {error.message}", self._retry_after()
                ) from error
            raise
