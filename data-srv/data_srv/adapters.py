"""DeviceDirectory over gRPC: DevSvc.Get on device-srv, found through discovery."""

from __future__ import annotations

from api.device_srv.v1 import device_pb2, device_pb2_grpc
from data_srv.usecases import DeviceReport
from micro.client.reply import reply


class GrpcDeviceDirectory:
    def __init__(self, stub: device_pb2_grpc.DevSvcAsyncStub) -> None:
        self._stub = stub

    async def get(self, name: str) -> DeviceReport:
        device = await reply(self._stub.Get(device_pb2.DeviceName(name=name)))
        return DeviceReport(device=device.name, active=device.active)
