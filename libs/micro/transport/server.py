"""The one shape of a server the app runs, after kratos's transport.Server: the app
starts, registers and stops each of its servers in a loop, knowing no server by name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Endpoint:
    """Where a started server listens, under the scheme discovery routes by."""

    scheme: str  # "grpc" or "http", as in the registered "grpc://host:port"
    host: str  # the bound host; the app advertises a reachable one in its place
    port: int


class Server(Protocol):
    async def start(self) -> int:
        """Bind and serve; answers the bound port (config port 0 picks a free one)."""
        ...

    async def stop(self, grace: float) -> None:
        """Refuse new work, let work in flight finish for up to `grace` seconds."""
        ...

    @property
    def endpoint(self) -> Endpoint | None:
        """What discovery may route callers to; None until the server listens, and for
        a server discovery must not route to (one that only answers probes and /metrics)."""
        ...
