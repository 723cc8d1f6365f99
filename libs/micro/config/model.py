"""The typed configuration every service shares; a service subclasses ServiceConfig.

The shape follows the original Go-Micro example's config.yaml (server.http, server.grpc,
client.grpc, registry) and its remote.yaml bootstrap (remote.k8s), so the same files
load unchanged.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)(ms|s|m|h))+\s*$")
# A bare number is seconds; environment overrides deliver it as a string ("0", "1.5").
_SECONDS = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> timedelta:
    """Read a Go-style duration ("1s", "500ms", "1m30s") or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str) and _SECONDS.match(value):
        return timedelta(seconds=float(value))
    if isinstance(value, str) and _DURATION.match(value):
        seconds = sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(value))
        return timedelta(seconds=seconds)
    raise ValueError(f"not a duration: {value!r} (use e.g. 1s, 500ms, 1m30s)")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class Section(BaseModel):
    """A config section: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class HttpServerConfig(Section):
    addr: str = "0.0.0.0:8080"
    timeout: Duration = timedelta(seconds=1)
    # CORS, as in the original example's server.http section.
    headers: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    max_body_bytes: int = Field(default=1 << 20, gt=0)


class GrpcServerConfig(Section):
    addr: str = "0.0.0.0:9090"
    timeout: Duration = timedelta(seconds=1)
    max_message_bytes: int = Field(default=4 << 20, gt=0)


class MetricsServerConfig(Section):
    """An HTTP listener for /metrics, /healthz and /readyz only, for services without
    server.http (with server.http those paths are served there)."""

    addr: str = "0.0.0.0:9091"


class ServerConfig(Section):
    http: HttpServerConfig | None = None
    grpc: GrpcServerConfig | None = None
    metrics: MetricsServerConfig | None = None


class GrpcClientConfig(Section):
    timeout: Duration = timedelta(seconds=1)
    max_attempts: int = Field(default=3, ge=1, le=5)


class ClientConfig(Section):
    grpc: GrpcClientConfig = GrpcClientConfig()


class KubernetesConfig(Section):
    """Where the Kubernetes API is: in-cluster when empty, else a kubeconfig or URL."""

    master_url: str = ""
    kubeconfig: str = ""
    namespace: str = ""
    label_selector: str = ""
    field_selector: str = ""


class StaticService(Section):
    name: str
    endpoints: tuple[str, ...]


class RegistryConfig(Section):
    type: Literal["k8s", "endpointslices", "static"] = "k8s"
    k8s: KubernetesConfig = KubernetesConfig()
    prefix: str = "gomicro"
    # Used by type "static": the instances of each service, e.g. grpc://127.0.0.1:9090.
    services: tuple[StaticService, ...] = ()


class RemoteConfig(Section):
    """The bootstrap's pointer to remote config (the Go example's remote.yaml)."""

    type: Literal["k8s", "none"] = "none"
    k8s: KubernetesConfig = KubernetesConfig()
    # The Secrets to read, by name, each watched with fieldSelector=metadata.name=<name>
    # so that a Role can grant exactly them (resourceNames). An empty list: no Secret at
    # all (no Secret request is made). Absent (None): every Secret the label selector
    # matches, which needs list/watch on all Secrets of the namespace.
    secrets: tuple[str, ...] | None = None


class LogConfig(Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    format: Literal["text", "json"] = "text"


class TracingConfig(Section):
    otlp_endpoint: str = ""  # empty: no exporter; trace ids still reach the logs
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class ShutdownConfig(Section):
    drain_delay: Duration = timedelta(seconds=2)  # time for discovery to converge
    grace_period: Duration = timedelta(seconds=10)  # for in-flight calls to finish


class ServiceConfig(Section):
    """Sections every service has. Services subclass it and add their own sections."""

    server: ServerConfig = ServerConfig()
    client: ClientConfig = ClientConfig()
    registry: RegistryConfig = RegistryConfig()
    remote: RemoteConfig = RemoteConfig()
    log: LogConfig = LogConfig()
    tracing: TracingConfig = TracingConfig()
    shutdown: ShutdownConfig = ShutdownConfig()
