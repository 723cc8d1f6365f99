"""What device-srv does, independent of gRPC and of the database behind it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from device_srv.domain import PAGE_TOKEN_PREFIX, Device, is_valid_name, name_problem
from device_srv.repository import DeviceRepository
from micro import paging
from micro.errors import invalid_argument, not_found

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class DevicePage:
    devices: list[Device]
    next_page_token: str  # empty on the last page


class DeviceUseCases:
    def __init__(self, repository: DeviceRepository) -> None:
        self._repository = repository

    async def get(self, name: str) -> Device:
        _check_name(name, field="name")
        device = await self._repository.get(name)
        if device is None:
            raise not_found(f"device {name!r} not found", field="name")
        return device

    async def list(self, page_size: int, page_token: str) -> DevicePage:
        size = paging.page_size(page_size, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        after = paging.start_after(PAGE_TOKEN_PREFIX, page_token, is_valid_name)
        rows = await self._repository.list_after(after, size + 1)
        return DevicePage(*paging.split_page(rows, size, PAGE_TOKEN_PREFIX, lambda d: d.name))

    async def seed(self, devices: Sequence[Device]) -> None:
        """Add or update the configured devices; devices not listed stay as they are."""
        seen: set[str] = set()
        for index, device in enumerate(devices):
            field = f"devices[{index}].name"
            _check_name(device.name, field=field)
            if device.name in seen:
                raise invalid_argument(field, f"device {device.name!r} is listed twice")
            seen.add(device.name)
        await self._repository.upsert(devices)


def _check_name(name: str, *, field: str) -> None:
    problem = name_problem(name)
    if problem is not None:
        raise invalid_argument(field, problem)
