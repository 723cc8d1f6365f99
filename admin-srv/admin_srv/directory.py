"""DeviceDirectory over gRPC: DevSvc.Get on device-srv, found through discovery."""

from __future__ import annotations

from admin_srv.usecases import DeviceState
from api.device_srv.v1 import device_pb2, device_pb2_grpc
from micro.client.reply import reply


class GrpcDeviceDirectory:
    def __init__(self, stub: device_pb2_grpc.DevSvcAsyncStub) -> None:
        self._stub = stub

    async def get(self, name: str) -> DeviceState:
        device = await reply(self._stub.Get(device_pb2.DeviceName(name=name)))
        return DeviceState(device.name, device.active)
