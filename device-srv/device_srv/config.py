"""device-srv's configuration: the shared sections plus its database and device list."""

from __future__ import annotations

from typing import Annotated

from pydantic import field_validator, model_validator

from device_srv.domain import Device, name_problem
from micro.config.model import Section, ServiceConfig
from micro.config.reload import Reload
from micro.db import DatabaseConfig


class DeviceSeed(Section):
    name: str
    active: bool

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        problem = name_problem(name)
        if problem is not None:
            raise ValueError(problem)
        return name

    def to_device(self) -> Device:
        return Device(name=self.name, active=self.active)


class DeviceSrvConfig(ServiceConfig):
    database: DatabaseConfig = DatabaseConfig()
    devices: Annotated[tuple[DeviceSeed, ...], Reload.LIVE] = ()
    """Seeded into the database at start and again whenever this list changes; devices
    not listed stay."""

    @model_validator(mode="after")
    def _unique_device_names(self) -> DeviceSrvConfig:
        names = [d.name for d in self.devices]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"devices: names listed more than once: {', '.join(twice)}")
        return self
