"""Listen addresses: "host:port" from config, with MICRO_BIND_HOST applied."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

BIND_HOST_ENV = "MICRO_BIND_HOST"


def split_address(addr: str) -> tuple[str, int]:
    """("0.0.0.0", 9090) from "0.0.0.0:9090"; IPv6 hosts in brackets ("[::]:9090")."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"not a host:port address: {addr!r}")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "0.0.0.0", int(port)


def join_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def listen_address(addr: str, env: Mapping[str, str] | None = None) -> tuple[str, int]:
    """The host and port to bind: MICRO_BIND_HOST, when set, replaces the host."""
    host, port = split_address(addr)
    override = (env if env is not None else os.environ).get(BIND_HOST_ENV, "").strip()
    return (override or host), port


def bind_socket(host: str, port: int, server: str) -> socket.socket:
    """A bound, non-blocking TCP socket; the error names the server and the address."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        address = join_address(host, port)
        raise OSError(f"{server} server cannot listen on {address}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock
