"""The client.grpc settings that balanced calls read when they start."""

from __future__ import annotations

from micro.config.model import GrpcClientConfig


class CallSettings:
    """client.grpc as the calls see it.

    Each call reads `current` once, when it starts (its deadline and attempts come from
    that one value); `update` replaces the value whole when the config changes, so stubs
    are never rebuilt and calls already in flight keep the deadline they started with.
    """

    def __init__(self, cfg: GrpcClientConfig) -> None:
        self._cfg = cfg

    @property
    def current(self) -> GrpcClientConfig:
        return self._cfg

    def update(self, cfg: GrpcClientConfig) -> None:
        self._cfg = cfg  # GrpcClientConfig is frozen: one reference swap
