"""Composition root of data-srv: a DevSvc client through discovery, use cases, the router."""

from __future__ import annotations

from api.device_srv.v1.device_pb2_grpc import DevSvcStub
from data_srv.adapters import GrpcDeviceDirectory
from data_srv.config import DataSrvConfig
from data_srv.http_api import build_router
from data_srv.usecases import DeviceDataUseCases
from micro.app import ServiceContext, run
from micro.registry.names import package_registry_name

NAME = package_registry_name(__name__)  # go-micro.<folder name>


async def compose(ctx: ServiceContext[DataSrvConfig]) -> None:
    directory = GrpcDeviceDirectory(ctx.client(DevSvcStub))
    retry_after = ctx.config.view(lambda c: c.data.retry_after)
    ctx.include_router(build_router(DeviceDataUseCases(directory, retry_after=retry_after)))


def main() -> None:
    run(name=NAME, config_model=DataSrvConfig, compose=compose)
