"""The client's address, one function for HTTP and gRPC: `client_address()`.

It is the connection's peer. A proxy header (server.*.proxy_header) counts only when the
peer is one of server.*.trusted_proxies, and then only its right-most hop that is not a
trusted proxy itself: every hop left of that one was written by the client, who can write
anything. Every value is parsed as an IP address, so the answer is always a canonical
address (or "unknown"), never the text a client sent: it is safe as a key.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from micro.config.model import GrpcServerConfig, HttpServerConfig, ProxyHeader

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The answer when the peer is no IP connection (a unix socket): one key for all of them.
UNKNOWN = "unknown"


def parse_ip(text: str) -> IPAddress | None:
    """An address from "1.2.3.4", "1.2.3.4:80", "::1", "[::1]:80" or a quoted form;
    IPv4-mapped IPv6 as IPv4, any zone dropped, so its text is at most 39 characters.
    None for anything else (names, "unknown", garbage)."""
    text = text.strip().strip('"')
    # An IPv6 zone ("%eth0") is free text and names our interface, not the client.
    text = text.replace("%", "]", 1) if text.startswith("[") else text.partition("%")[0]
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]  # IPv4 with a port
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def grpc_peer_ip(peer: str | None) -> IPAddress | None:
    """The address in grpc's peer string: "ipv4:127.0.0.1:5000", "ipv6:[::1]:5000"."""
    kind, _, address = (peer or "").partition(":")
    return parse_ip(address) if kind in ("ipv4", "ipv6") else None


def _hops(header: ProxyHeader, values: Sequence[str]) -> list[str]:
    """The header's hops, left (farthest) to right (nearest); repeated headers in order."""
    items = [item for value in values for item in value.split(",")]
    if header == "x-real-ip":
        return items[-1:]  # one address, set by the nearest proxy
    if header == "forwarded":  # RFC 7239: for=<node> among ;-separated pairs
        nodes = []
        for item in items:
            pairs = (pair.strip().partition("=") for pair in item.split(";"))
            nodes.append(next((v for k, _, v in pairs if k.lower() == "for"), ""))
        return nodes
    return items


@dataclass(frozen=True)
class ProxyRules:
    """Which peers may tell the client's address, and in which header."""

    trusted: tuple[IPNetwork, ...] = ()
    header: ProxyHeader = "x-forwarded-for"

    @classmethod
    def of(cls, settings: HttpServerConfig | GrpcServerConfig | None) -> ProxyRules:
        if settings is None:
            return cls()
        networks = tuple(ipaddress.ip_network(c, strict=False) for c in settings.trusted_proxies)
        return cls(networks, settings.proxy_header)

    def trusts(self, address: IPAddress) -> bool:
        return any(address in network for network in self.trusted)

    def resolve(self, peer: IPAddress | None, header_values: Callable[[str], list[str]]) -> str:
        """Walk from the peer leftwards while the hop is a trusted proxy; the first hop that
        is not is the client. A hop that is no IP stops the walk at the proxy that sent it."""
        if peer is None:
            return UNKNOWN
        current = peer
        if not self.trusts(current):
            return str(current)  # the common case: the header is not even read
        for hop in reversed(_hops(self.header, header_values(self.header))):
            address = parse_ip(hop)
            if address is None:
                break
            current = address
            if not self.trusts(current):
                break
        return str(current)


class ProxyPolicy:
    """The rules in effect; `update` swaps them in one assignment (server.*.trusted_proxies
    and proxy_header are live)."""

    def __init__(self, rules: ProxyRules) -> None:
        self.rules = rules

    def update(self, rules: ProxyRules) -> None:
        self.rules = rules


@dataclass(frozen=True, slots=True)
class _Source:
    peer: IPAddress | None
    header_values: Callable[[str], list[str]]
    rules: ProxyRules


_source: ContextVar[_Source | None] = ContextVar("micro_client_source", default=None)


@contextmanager
def serving(
    peer: IPAddress | None, header_values: Callable[[str], list[str]], rules: ProxyRules
) -> Iterator[None]:
    """Set by the HTTP middleware and the gRPC layer around each request; resolved only
    when the handler asks."""
    token = _source.set(_Source(peer, header_values, rules))
    try:
        yield
    finally:
        _source.reset(token)


def client_address() -> str:
    """The calling client's IP address (canonical text), or "unknown" for a non-IP peer.
    Only inside a request of the HTTP or gRPC server."""
    source = _source.get()
    if source is None:
        raise RuntimeError("client_address() is only known inside a request")
    return source.rules.resolve(source.peer, source.header_values)
