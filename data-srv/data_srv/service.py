"""Composition root of data-srv: a DevSvc client through discovery, use cases, the router."""

from __future__ import annotations

from api.device_srv.v1.device_pb2_grpc import DevSvcStub
from data_srv.config import DataSrvConfig
from data_srv.directory import GrpcDeviceDirectory
from data_srv.router import build_router
from data_srv.usecases import DeviceDataUseCases
from micro.app import ServiceContext, run

NAME = "go-micro.data-srv"


async def compose(ctx: ServiceContext[DataSrvConfig]) -> None:
    directory = GrpcDeviceDirectory(ctx.client(DevSvcStub))
    devices = DeviceDataUseCases(
        directory,
        retry_after=lambda: ctx.config.current.data.retry_after,  # follows config changes
    )
    ctx.include_router(build_router(devices))


def main() -> None:
    run(name=NAME, config_model=DataSrvConfig, compose=compose)
