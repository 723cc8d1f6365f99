"""The use cases on their own, over an in-memory repository."""

from __future__ import annotations

import grpc
import pytest

from device_srv.domain import Device
from device_srv.repository import DeviceRepository
from device_srv.usecases import MAX_PAGE_SIZE, DeviceUseCases
from micro.errors import ServiceError


async def _seeded(repository: DeviceRepository, count: int) -> DeviceUseCases:
    devices = DeviceUseCases(repository)
    await devices.seed([Device(f"device{i:03d}", i % 2 == 0) for i in range(count)])
    return devices


async def test_get_answers_a_known_device(memory_repository: DeviceRepository) -> None:
    devices = await _seeded(memory_repository, 3)
    assert await devices.get("device001") == Device("device001", False)
    assert await devices.get("device002") == Device("device002", True)


async def test_get_of_an_unknown_device_is_not_found(
    memory_repository: DeviceRepository,
) -> None:
    devices = await _seeded(memory_repository, 1)
    with pytest.raises(ServiceError) as caught:
        await devices.get("device9")
    assert caught.value.code is grpc.StatusCode.NOT_FOUND
    assert "device9" in caught.value.message


@pytest.mark.parametrize("name", ["", "x" * 64, "dev ice", "dévice"])
async def test_get_of_an_invalid_name_is_invalid_argument(
    memory_repository: DeviceRepository, name: str
) -> None:
    devices = await _seeded(memory_repository, 1)
    with pytest.raises(ServiceError) as caught:
        await devices.get(name)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.field == "name"
    assert caught.value.message.startswith("name: ")


async def test_list_walks_every_device_once_in_name_order(
    memory_repository: DeviceRepository,
) -> None:
    devices = await _seeded(memory_repository, 7)
    seen: list[str] = []
    token = ""
    for _ in range(10):  # bounded: 7 devices in pages of 3 need 3 pages
        page = await devices.list(3, token)
        assert len(page.devices) <= 3
        seen.extend(d.name for d in page.devices)
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"device{i:03d}" for i in range(7)]


async def test_list_has_no_next_token_when_the_page_is_exactly_full(
    memory_repository: DeviceRepository,
) -> None:
    devices = await _seeded(memory_repository, 4)
    page = await devices.list(4, "")
    assert len(page.devices) == 4
    assert page.next_page_token == ""


async def test_list_page_size_zero_is_the_default_and_large_is_capped(
    memory_repository: DeviceRepository,
) -> None:
    devices = await _seeded(memory_repository, MAX_PAGE_SIZE + 5)
    default_page = await devices.list(0, "")
    assert len(default_page.devices) == 50
    capped = await devices.list(10_000, "")
    assert len(capped.devices) == MAX_PAGE_SIZE
    assert capped.next_page_token


@pytest.mark.parametrize(
    ("page_size", "page_token", "field"),
    [(-1, "", "pageSize"), (3, "not-a-token", "pageToken")],
)
async def test_list_refuses_bad_paging(
    memory_repository: DeviceRepository, page_size: int, page_token: str, field: str
) -> None:
    devices = await _seeded(memory_repository, 2)
    with pytest.raises(ServiceError) as caught:
        await devices.list(page_size, page_token)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.field == field


async def test_seed_updates_listed_devices_and_keeps_the_rest(
    memory_repository: DeviceRepository,
) -> None:
    devices = DeviceUseCases(memory_repository)
    await devices.seed([Device("device1", True), Device("device2", True)])
    await devices.seed([Device("device2", False), Device("device3", True)])
    assert await memory_repository.list_after(None, 10) == [
        Device("device1", True),
        Device("device2", False),
        Device("device3", True),
    ]


@pytest.mark.parametrize(
    ("seed", "message"),
    [
        ([Device("ok", True), Device("bad name", True)], "devices[1].name: may contain only"),
        ([Device("twice", True), Device("twice", False)], "devices[1].name: device 'twice'"),
    ],
)
async def test_seed_refuses_a_bad_list_and_changes_nothing(
    memory_repository: DeviceRepository, seed: list[Device], message: str
) -> None:
    devices = DeviceUseCases(memory_repository)
    with pytest.raises(ServiceError) as caught:
        await devices.seed(seed)
    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.message.startswith(message)
    assert await memory_repository.list_after(None, 10) == []
