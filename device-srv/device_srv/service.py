"""Composition root of device-srv: database, use cases and DevSvc, wired to the framework."""

from __future__ import annotations

from api.device_srv.v1 import device_pb2_grpc
from device_srv.config import DeviceSeed, DeviceSrvConfig
from device_srv.grpc_api import DevSvcServicer
from device_srv.migrations import MIGRATIONS
from device_srv.repository import SqlDeviceRepository
from device_srv.usecases import DeviceUseCases
from micro.app import ServiceContext, run
from micro.db import open_service_database
from micro.registry.names import package_registry_name

NAME = package_registry_name(__name__)  # go-micro.<folder name>


async def compose(ctx: ServiceContext[DeviceSrvConfig]) -> None:
    cfg = ctx.config.current
    engine = await open_service_database(ctx, cfg.database, MIGRATIONS)
    devices = DeviceUseCases(SqlDeviceRepository(engine))

    async def seed(seeds: tuple[DeviceSeed, ...]) -> None:
        await devices.seed([seed.to_device() for seed in seeds])

    await seed(cfg.devices)
    ctx.config.follow(lambda c: c.devices, seed, what="device list")
    ctx.add_grpc_service(device_pb2_grpc.add_DevSvcServicer_to_server, DevSvcServicer(devices))


def main() -> None:
    run(name=NAME, config_model=DeviceSrvConfig, compose=compose)
