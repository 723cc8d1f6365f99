"""The client.grpc settings that balanced calls read when they start."""

from __future__ import annotations

from micro.config.merge import deep_merge
from micro.config.model import GrpcClientConfig
from micro.config.overrides import DEPENDENCIES_KEY, split_override


class CallSettings:
    """client.grpc as the calls see it.

    Each call reads its settings once, when it starts (its deadline and attempts come
    from that one value); `update` replaces the value whole when the config changes, so
    stubs are never rebuilt and calls already in flight keep the settings they started
    with.
    """

    def __init__(self, cfg: GrpcClientConfig) -> None:
        self._cfg = cfg
        self._resolved: dict[tuple[str, str | None], GrpcClientConfig] = {}

    @property
    def current(self) -> GrpcClientConfig:
        """The defaults, before any per-dependency override."""
        return self._cfg

    def update(self, cfg: GrpcClientConfig) -> None:
        # Both swapped as whole references: a call never sees one without the other.
        self._cfg, self._resolved = cfg, {}

    def resolved(self, service_name: str, method_name: str | None = None) -> GrpcClientConfig:
        """client.grpc for calls to `service_name` (registry name, "go-micro.user-srv"),
        and to its method `method_name` when given: the short name ("VerifyPassword", not
        "/user_srv.v1.UserService/VerifyPassword"). The dependency's override merged over
        the defaults, then the method's over that; computed once per config version."""
        key = (service_name, method_name)
        cache = self._resolved
        found = cache.get(key)
        if found is None:
            found = _resolve(self._cfg, service_name, method_name)
            cache[key] = found
        return found


def _resolve(cfg: GrpcClientConfig, service_name: str, method_name: str | None) -> GrpcClientConfig:
    override = cfg.dependencies.get(service_name)
    if override is None:
        return cfg
    own, methods = split_override(service_name, override)  # validated at load already
    values = deep_merge(cfg.model_dump(exclude={DEPENDENCIES_KEY}), own)
    if method_name is not None and method_name in methods:
        values = deep_merge(values, methods[method_name])
    return GrpcClientConfig.model_validate(values)
