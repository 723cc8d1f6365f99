"""DeviceDirectory over gRPC: DevSvc.Get on device-srv, found through discovery."""

from __future__ import annotations

import grpc

from api.device_srv.v1 import device_pb2, device_pb2_grpc
from data_srv.usecases import DeviceReport
from micro.errors import ServiceError

DEVICE_SRV = "go-micro.device-srv"


class GrpcDeviceDirectory:
    def __init__(self, stub: device_pb2_grpc.DevSvcAsyncStub) -> None:
        self._stub = stub

    async def get(self, name: str) -> DeviceReport:
        try:
            device = await self._stub.Get(device_pb2.DeviceName(name=name))
        except grpc.RpcError as error:
            raise ServiceError.from_rpc_error(error) from error
        return DeviceReport(device=device.name, active=device.active)
