"""data-srv's configuration: the shared sections plus how it answers when device-srv is down."""

from __future__ import annotations

from datetime import timedelta

from micro.config.model import Duration, Section, ServiceConfig
from micro.config.reload import Reload


class DataConfig(Section):
    reload_policy = Reload.LIVE  # read on every answer

    retry_after: Duration = timedelta(seconds=5)
    """Sent as Retry-After (whole seconds, at least 1) with a 503 when device-srv is down."""


class DataSrvConfig(ServiceConfig):
    data: DataConfig = DataConfig()
