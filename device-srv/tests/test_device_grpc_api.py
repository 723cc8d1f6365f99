"""device-srv through its real gRPC server, composed as `python -m device_srv` does."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from api.device_srv.v1 import device_pb2
from micro.errors import ServiceError

if TYPE_CHECKING:
    from api.device_srv.v1.device_pb2_grpc import DevSvcAsyncStub

    DeviceSrvRunner = Callable[[dict[str, Any]], AbstractAsyncContextManager[DevSvcAsyncStub]]


def _field_of(error: grpc.aio.AioRpcError) -> str | None:
    """The field named by the google.rpc.BadRequest detail in the call's trailers."""
    return ServiceError.from_rpc_error(error).field


async def test_get_answers_the_seeded_devices(device_stub: DevSvcAsyncStub) -> None:
    one = await device_stub.Get(device_pb2.DeviceName(name="device1"))
    three = await device_stub.Get(device_pb2.DeviceName(name="device3"))
    assert (one.name, one.active) == ("device1", True)
    assert (three.name, three.active) == ("device3", False)


async def test_get_of_an_unknown_device_is_not_found(device_stub: DevSvcAsyncStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await device_stub.Get(device_pb2.DeviceName(name="device9"))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "device 'device9' not found"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "name: must not be empty"),
        ("d" * 64, "name: must be at most 63 characters (got 64)"),
        ("dévice", "name: may contain only ASCII letters, digits, '.', '_' and '-'"),
        ("device 1", "name: may contain only ASCII letters, digits, '.', '_' and '-'"),
    ],
)
async def test_get_of_an_invalid_name_is_invalid_argument(
    device_stub: DevSvcAsyncStub, name: str, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await device_stub.Get(device_pb2.DeviceName(name=name))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == message
    assert _field_of(caught.value) == "name"


async def test_list_pages_through_every_device(device_stub: DevSvcAsyncStub) -> None:
    first = await device_stub.List(device_pb2.ListDevicesRequest(page_size=2))
    assert [d.name for d in first.devices] == ["device1", "device2"]
    assert first.next_page_token
    second = await device_stub.List(
        device_pb2.ListDevicesRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [(d.name, d.active) for d in second.devices] == [("device3", False)]
    assert second.next_page_token == ""


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (device_pb2.ListDevicesRequest(page_size=-5), "pageSize"),
        (device_pb2.ListDevicesRequest(page_token="Zm9v"), "pageToken"),
    ],
)
async def test_list_refuses_bad_paging(
    device_stub: DevSvcAsyncStub, request_: device_pb2.ListDevicesRequest, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await device_stub.List(request_)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert _field_of(caught.value) == field


async def test_devices_outlive_a_restart_and_a_shorter_list(
    run_device_srv: DeviceSrvRunner, device_config: dict[str, Any]
) -> None:
    async with run_device_srv(device_config):
        pass
    shorter = {**device_config, "devices": [{"name": "device3", "active": True}]}
    async with run_device_srv(shorter) as stub:
        three = await stub.Get(device_pb2.DeviceName(name="device3"))
        assert three.active is True  # updated from the new list
        one = await stub.Get(device_pb2.DeviceName(name="device1"))
        assert one.active is True  # no longer listed, kept
