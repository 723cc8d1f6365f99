"""Endpoint strings "scheme://host:port", with IPv6 hosts in brackets."""

from __future__ import annotations

import re

_ENDPOINT = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>\[[0-9A-Fa-f:.%]+\]|[^:/\[\]]+):(?P<port>\d{1,5})$"
)


class EndpointError(ValueError):
    """An endpoint string that is not scheme://host:port."""


def format_endpoint(scheme: str, host: str, port: int) -> str:
    """ "grpc://10.0.0.1:9090"; an IPv6 host is bracketed: "grpc://[fd00::1]:9090"."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def parse_endpoint(endpoint: str) -> tuple[str, str, int]:
    """(scheme, host, port) of "scheme://host:port"; an IPv6 host keeps its brackets."""
    match = _ENDPOINT.match(endpoint.strip())
    if match is None:
        raise EndpointError(f"endpoint {endpoint!r} is not scheme://host:port")
    port = int(match["port"])
    if not 0 < port < 65536:
        raise EndpointError(f"endpoint {endpoint!r}: port {port} is out of range")
    return match["scheme"], match["host"], port


def grpc_target(endpoint: str) -> str:
    """The grpc channel target of a grpc:// endpoint: "host:port" ("[fd00::1]:9090")."""
    _, host, port = parse_endpoint(endpoint)
    return f"{host}:{port}"
