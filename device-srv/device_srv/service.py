"""Composition root of device-srv: database, use cases and DevSvc, wired to the framework."""

from __future__ import annotations

from api.device_srv.v1 import device_pb2_grpc
from device_srv.config import DeviceSeed, DeviceSrvConfig
from device_srv.migrations import MIGRATIONS
from device_srv.repository import SqlDeviceRepository
from device_srv.servicer import SERVICE_NAME, DevSvcServicer
from device_srv.usecases import DeviceUseCases
from micro.app import ServiceContext, run
from micro.db import open_service_database
from micro.errors import ServiceError

NAME = "go-micro.device-srv"


async def compose(ctx: ServiceContext[DeviceSrvConfig]) -> None:
    cfg = ctx.config.current
    engine = await open_service_database(ctx, cfg.database, MIGRATIONS)
    devices = DeviceUseCases(SqlDeviceRepository(engine))
    await devices.seed([seed.to_device() for seed in cfg.devices])

    async def reseed(seeds: tuple[DeviceSeed, ...]) -> None:
        try:
            await devices.seed([seed.to_device() for seed in seeds])
        except ServiceError as error:  # config validation should have caught it already
            ctx.logger.error("device list not applied: %s", error.message)
            return
        ctx.logger.info("device list applied: %d devices", len(seeds))

    ctx.config.subscribe(lambda c: c.devices, reseed)
    ctx.add_grpc_service(
        device_pb2_grpc.add_DevSvcServicer_to_server, DevSvcServicer(devices), SERVICE_NAME
    )


def main() -> None:
    run(name=NAME, config_model=DeviceSrvConfig, compose=compose)
