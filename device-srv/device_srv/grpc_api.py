"""The gRPC face of device-srv: DevSvc, translating messages to use-case calls."""

from __future__ import annotations

import grpc

from api.device_srv.v1 import device_pb2, device_pb2_grpc
from device_srv.domain import Device
from device_srv.usecases import DeviceUseCases


def _to_message(device: Device) -> device_pb2.Device:
    return device_pb2.Device(name=device.name, active=device.active)


class DevSvcServicer(device_pb2_grpc.DevSvcServicer):
    """ServiceErrors raised by the use cases become gRPC statuses in the framework's server."""

    def __init__(self, devices: DeviceUseCases) -> None:
        self._devices = devices

    async def Get(
        self, request: device_pb2.DeviceName, context: grpc.aio.ServicerContext[object, object]
    ) -> device_pb2.Device:
        return _to_message(await self._devices.get(request.name))

    async def List(
        self,
        request: device_pb2.ListDevicesRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> device_pb2.ListDevicesResponse:
        page = await self._devices.list(request.page_size, request.page_token)
        return device_pb2.ListDevicesResponse(
            devices=[_to_message(d) for d in page.devices], next_page_token=page.next_page_token
        )
