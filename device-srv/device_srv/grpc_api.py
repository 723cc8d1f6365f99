"""The gRPC face of device-srv: DevSvc, translating messages to use-case calls."""

from __future__ import annotations

from api.device_srv.v1 import device_pb2, device_pb2_grpc
from device_srv.domain import Device
from device_srv.usecases import DeviceUseCases
from micro.servicer import Context, Servicer


def _to_message(device: Device) -> device_pb2.Device:
    return device_pb2.Device(name=device.name, active=device.active)


class DevSvcServicer(Servicer[DeviceUseCases], device_pb2_grpc.DevSvcServicer):
    async def Get(self, request: device_pb2.DeviceName, context: Context) -> device_pb2.Device:
        return _to_message(await self.usecases.get(request.name))

    async def List(
        self,
        request: device_pb2.ListDevicesRequest,
        context: Context,
    ) -> device_pb2.ListDevicesResponse:
        page = await self.usecases.list(request.page_size, request.page_token)
        return device_pb2.ListDevicesResponse(
            devices=[_to_message(d) for d in page.devices], next_page_token=page.next_page_token
        )
