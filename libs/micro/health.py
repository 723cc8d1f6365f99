"""One health state shared by every server: gRPC grpc.health.v1, the admin port's
detailed /readyz and the public HTTP port's terse one.

A service is not ready while it starts, ready once its servers listen and it is
registered, and not ready again from the moment shutdown begins (never back).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from grpc_health.v1 import health_pb2
from grpc_health.v1._async import HealthServicer

OVERALL = ""  # the grpc.health.v1 name of the whole server


class Phase(Enum):
    STARTING = "starting"
    SERVING = "serving"
    SHUTTING_DOWN = "shutting down"


class Health:
    """Serving state per gRPC service and overall, and the readiness /readyz reports."""

    def __init__(self, config_error: Callable[[], str | None] = lambda: None) -> None:
        self.servicer = HealthServicer()
        self._services: set[str] = {OVERALL}
        self._phase = Phase.STARTING
        self._config_error = config_error

    @property
    def ready(self) -> bool:
        return self._phase is Phase.SERVING

    @property
    def shutting_down(self) -> bool:
        """From set_not_serving on: the servers drain (micro.transport.drain)."""
        return self._phase is Phase.SHUTTING_DOWN

    @property
    def status(self) -> str:
        """What the public /readyz says, and nothing more."""
        return "ready" if self.ready else "not ready"

    def report_config_error(self, source: Callable[[], str | None]) -> None:
        """Where /readyz reads the last rejected config update (ConfigHandle.last_error)."""
        self._config_error = source

    async def add_service(self, full_service_name: str) -> None:
        """Track a gRPC service; it reports the current phase from now on."""
        self._services.add(full_service_name)
        await self.servicer.set(full_service_name, self._status())

    async def set_serving(self) -> None:
        if self._phase is Phase.SHUTTING_DOWN:
            return
        self._phase = Phase.SERVING
        await self.publish()

    async def set_not_serving(self) -> None:
        """Enter shutdown: NOT_SERVING for good (health watchers are told at once)."""
        self._phase = Phase.SHUTTING_DOWN
        await self.servicer.enter_graceful_shutdown()

    def readiness(self) -> dict[str, object]:
        """The admin /readyz body: status, phase and, when there is one, the config error."""
        detail: dict[str, object] = {
            "status": self.status,
            "phase": self._phase.value,
        }
        error = self._config_error()
        if error:
            detail["configError"] = error
        return detail

    def _status(self) -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
        if self._phase is Phase.SERVING:
            return health_pb2.HealthCheckResponse.SERVING
        return health_pb2.HealthCheckResponse.NOT_SERVING

    async def publish(self) -> None:
        """Tell the gRPC servicer the current phase (it starts out SERVING by itself)."""
        status = self._status()
        for name in sorted(self._services):
            await self.servicer.set(name, status)
