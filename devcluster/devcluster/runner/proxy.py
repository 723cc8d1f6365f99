"""NodePort and LoadBalancer Services on <node address>:<nodePort>, as kube-proxy does.

A TCP listener per nodePort forwards each connection to one ready endpoint of the
Service port (round robin over the EndpointSlices), trying the next one when a connect
fails; with no ready endpoint the connection is closed at once. LoadBalancer Services
also get the node address as their status.loadBalancer.ingress.

externalTrafficPolicy: Local keeps the client's address, as kube-proxy does: only
endpoints on this node are used, and the upstream socket is bound to the client's own
source address (any 127.x address is ours on loopback), so the pod sees the client.
Cluster (the default) connects from the node, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import itertools
import logging
from dataclasses import dataclass, field

from devcluster.runner.controllers.endpointslice import SERVICE_NAME_LABEL
from devcluster.runner.informer import Informer, key_of
from devcluster.runner.kube import MERGE_PATCH, SERVICE, Kube, Obj

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

CONNECT_TIMEOUT_S = 3.0
CHUNK = 64 * 1024


@dataclass
class Listener:
    service_key: str
    port_name: str
    node_port: int
    server: asyncio.Server
    turn: itertools.count[int] = field(default_factory=itertools.count)


class NodePortProxy:
    def __init__(
        self,
        kube: Kube,
        address: str,
        services: Informer,
        slices: Informer,
        node_name: str = "devcluster",
    ) -> None:
        self.kube = kube
        self.address = address
        self.node_name = node_name
        self.services = services
        self.slices = slices
        self.listeners: dict[int, Listener] = {}
        self._connections: set[asyncio.Task[None]] = set()
        self._sync_lock = asyncio.Lock()
        services.add_handler(lambda _t, _s, _p: self._schedule_sync())

    def _schedule_sync(self) -> None:
        task = asyncio.ensure_future(self.sync())
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    def urls(self) -> list[tuple[str, str, int]]:
        """(service key, port name, node port) of every open listener."""
        return sorted((x.service_key, x.port_name, x.node_port) for x in self.listeners.values())

    async def sync(self) -> None:
        async with self._sync_lock:
            wanted: dict[int, tuple[str, str]] = {}
            for service in self.services.objects():
                spec = service.get("spec", {})
                if spec.get("type") not in ("NodePort", "LoadBalancer"):
                    continue
                for port in spec.get("ports") or []:
                    if port.get("protocol", "TCP") != "TCP":
                        continue
                    if not port.get("nodePort"):
                        log.warning(
                            "service %s port %s has no nodePort", key_of(service), port.get("port")
                        )
                        continue
                    wanted[int(port["nodePort"])] = (key_of(service), port.get("name", ""))
                if spec.get("type") == "LoadBalancer":
                    await self._publish_ingress(service)
            for node_port in list(self.listeners):
                listener = self.listeners[node_port]
                if wanted.get(node_port) != (listener.service_key, listener.port_name):
                    listener.server.close()
                    del self.listeners[node_port]
            for node_port, (service_key, port_name) in wanted.items():
                if node_port in self.listeners:
                    continue
                try:
                    server = await asyncio.start_server(
                        functools.partial(self._forward, node_port),
                        self.address,
                        node_port,
                        reuse_address=True,
                    )
                except OSError as error:
                    log.error(
                        "cannot listen on %s:%d for %s: %s",
                        self.address,
                        node_port,
                        service_key,
                        error,
                    )
                    continue
                self.listeners[node_port] = Listener(service_key, port_name, node_port, server)
                log.info("service %s: %s:%d", service_key, self.address, node_port)

    async def _publish_ingress(self, service: Obj) -> None:
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if any(item.get("ip") == self.address for item in ingress):
            return
        await self.kube.patch(
            SERVICE,
            service["metadata"]["name"],
            {"status": {"loadBalancer": {"ingress": [{"ip": self.address, "ipMode": "VIP"}]}}},
            service["metadata"]["namespace"],
            status=True,
            content_type=MERGE_PATCH,
        )

    def keeps_client_address(self, service_key: str) -> bool:
        """externalTrafficPolicy: Local, read at each connection so a change applies."""
        service = self.services.get(service_key) or {}
        return (service.get("spec") or {}).get("externalTrafficPolicy") == "Local"

    def ready_endpoints(
        self, service_key: str, port_name: str, *, local_only: bool = False
    ) -> list[tuple[str, int]]:
        namespace, name = service_key.split("/", 1)
        found = []
        for endpoint_slice in self.slices.objects(namespace):
            if (endpoint_slice["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL) != name:
                continue
            port = next(
                (p for p in endpoint_slice.get("ports") or [] if p.get("name", "") == port_name),
                None,
            )
            if port is None or port.get("port") is None:
                continue
            for endpoint in endpoint_slice.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") is False:
                    continue
                if local_only and endpoint.get("nodeName") != self.node_name:
                    continue
                for address in endpoint.get("addresses") or []:
                    found.append((address, int(port["port"])))
        return sorted(found)

    async def _forward(
        self, node_port: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        listener = self.listeners.get(node_port)
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        if listener is not None:
            local = self.keeps_client_address(listener.service_key)
            endpoints = self.ready_endpoints(
                listener.service_key, listener.port_name, local_only=local
            )
            source = _client_source(writer) if local else None
            start = next(listener.turn)
            for step in range(len(endpoints)):
                host, port = endpoints[(start + step) % len(endpoints)]
                try:
                    upstream = await asyncio.wait_for(
                        asyncio.open_connection(host, port, local_addr=_bind(source, host)),
                        CONNECT_TIMEOUT_S,
                    )
                    break
                except (OSError, TimeoutError):
                    continue
        if upstream is None:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await asyncio.gather(_pipe(reader, upstream[1]), _pipe(upstream[0], writer))
        finally:
            self._connections.discard(task)
            for w in (writer, upstream[1]):
                w.close()

    async def close(self) -> None:
        for listener in self.listeners.values():
            listener.server.close()
        for task in list(self._connections):
            task.cancel()
        self.listeners.clear()


def _client_source(writer: asyncio.StreamWriter) -> IPAddress | None:
    """The client's address when it is on loopback; None otherwise: the node cannot send
    from a remote client's address, and that connection comes from the node, as Cluster."""
    peer = writer.get_extra_info("peername")
    if not isinstance(peer, tuple) or not peer:
        return None
    try:
        address = ipaddress.ip_address(peer[0])
    except ValueError:
        return None
    return address if address.is_loopback else None


def _bind(source: IPAddress | None, host: str) -> tuple[str, int] | None:
    """Where to bind the upstream socket: the client's address, any port, when the
    endpoint is of the same IP family."""
    if source is None:
        return None
    try:
        same_family = ipaddress.ip_address(host).version == source.version
    except ValueError:
        return None
    return (str(source), 0) if same_family else None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            if writer.can_write_eof():
                writer.write_eof()
