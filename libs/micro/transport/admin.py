"""The admin server: /metrics, /healthz and the detailed /readyz on a port of their own,
for the kubelet's probes and Prometheus. Discovery never routes to it and no NodePort
exposes it, so the config error text in /readyz stays inside the cluster.

HTTP/1.1 with h11 on asyncio streams, not FastAPI: a gRPC-only service need not load the
ASGI stack for three fixed answers. GET and HEAD only; the request head is bounded, every
read has a timeout, keep-alive is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

import h11

from micro import metrics
from micro.config.model import AdminServerConfig
from micro.errors import code_for_http_status
from micro.health import Health
from micro.transport.address import bind_socket, join_address, listen_address
from micro.transport.server import Endpoint

_log = logging.getLogger("micro.admin")

MAX_HEAD_BYTES = 8 * 1024  # request line and headers; beyond it 431
MAX_CONNECTIONS = 32  # probes and a scraper need a handful; more are refused with 503
READ_CHUNK = 4096
ALLOWED = "GET, HEAD"


@dataclass(frozen=True, slots=True)
class Answer:
    """One response: status, body, content type and any further headers."""

    status: int
    body: bytes
    content_type: str = "application/json"
    extra: tuple[tuple[str, str], ...] = ()


def json_answer(status: int, body: object, *extra: tuple[str, str]) -> Answer:
    return Answer(status, json.dumps(body).encode(), extra=extra)


def error_answer(status: int, message: str, *extra: tuple[str, str]) -> Answer:
    """The error body every micro HTTP answer uses: {"code", "message"}, the code by the
    one table of micro.errors."""
    code = code_for_http_status(status).name
    return json_answer(status, {"code": code, "message": message}, *extra)


class AdminServer:
    """A micro.transport.server.Server answering probes and scrapes; `endpoint` is always
    None, so the app never registers it."""

    def __init__(self, config: AdminServerConfig, *, health: Health) -> None:
        self._config = config
        self._routes: dict[str, Callable[[], Answer]] = {
            "/metrics": self._metrics,
            "/healthz": lambda: json_answer(200, {"status": "ok"}),
            "/readyz": lambda: json_answer(200 if health.ready else 503, health.readiness()),
        }
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._idle: set[asyncio.Task[None]] = set()  # waiting for a request, none in hand
        self.host = ""
        self.port = 0

    @property
    def endpoint(self) -> Endpoint | None:
        return None

    async def start(self) -> int:
        host, port = listen_address(self._config.addr)
        sock = bind_socket(host, port, "admin")
        self.host, self.port = host, sock.getsockname()[1]
        self._server = await asyncio.start_server(self._connection, sock=sock)
        _log.info("[admin] server listening on: %s", join_address(host, self.port))
        return self.port

    async def stop(self, grace: float) -> None:
        """Close the listener and idle connections; answers being written get `grace`."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        for task in self._idle:
            task.cancel()
        if self._connections:
            _, late = await asyncio.wait(set(self._connections), timeout=max(grace, 0.0))
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await server.wait_closed()
        _log.info("[admin] server stopped")

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            if len(self._connections) > MAX_CONNECTIONS:
                await self._refuse(reader, writer)
                return
            await self._serve(reader, writer, task)
        except (ConnectionError, TimeoutError, asyncio.CancelledError):
            pass  # the peer left, stalled, or the server stops: nothing left to answer
        finally:
            self._connections.discard(task)
            self._idle.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """503, then read what the client sent before closing: closing a socket with
        unread bytes resets it, and the client would lose the answer."""
        writer.write(_BUSY)
        writer.write_eof()
        timeout = self._config.timeout.total_seconds()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(reader.read(MAX_HEAD_BYTES), timeout)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, task: asyncio.Task[None]
    ) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        while True:
            self._idle.add(task)
            try:
                request = await self._next_request(conn, reader)
            except h11.RemoteProtocolError as exc:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    status = exc.error_status_hint
                    answer = error_answer(status, str(exc), ("connection", "close"))
                    await self._send(conn, writer, b"GET", answer)
                return
            finally:
                self._idle.discard(task)
            if request is None:
                return
            await self._send(conn, writer, request.method, self._answer(request))
            # What is buffered of a request body is skipped, no more is read: a connection
            # whose request is not wholly in hand is not reused.
            while conn.their_state is h11.SEND_BODY and conn.next_event() is not h11.NEED_DATA:
                pass
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _next_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> h11.Request | None:
        """The next request's head, or None once the peer closes or stays silent."""
        timeout = self._config.timeout.total_seconds()
        # h11 checks its own limit only between reads; reading no further than the limit
        # keeps a head that arrives whole in one read within it too.
        room = MAX_HEAD_BYTES
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                return event
            if event is not h11.NEED_DATA:
                return None  # ConnectionClosed
            if room <= 0:
                raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
            try:
                data = await asyncio.wait_for(reader.read(min(READ_CHUNK, room)), timeout)
            except TimeoutError:
                return None
            room -= len(data)
            conn.receive_data(data)

    def _answer(self, request: h11.Request) -> Answer:
        path = request.target.split(b"?", 1)[0].decode("latin-1")
        route = self._routes.get(path)
        if route is None:
            return error_answer(404, f"no admin route {path}")
        if request.method not in (b"GET", b"HEAD"):
            method = request.method.decode("latin-1")
            return error_answer(405, f"{method} not allowed on {path}", ("allow", ALLOWED))
        try:
            return route()
        except Exception:  # e.g. a metrics collector that raises: a 500, not a dropped line
            _log.exception("[admin] %s failed", path)
            return error_answer(500, f"{path} failed")

    def _metrics(self) -> Answer:
        body, content_type = metrics.render()
        return Answer(200, body, content_type)

    async def _send(
        self, conn: h11.Connection, writer: asyncio.StreamWriter, method: bytes, answer: Answer
    ) -> None:
        headers = [
            ("content-type", answer.content_type),
            ("content-length", str(len(answer.body))),
            *answer.extra,
        ]
        reason = HTTPStatus(answer.status).phrase.encode()
        response = h11.Response(status_code=answer.status, headers=headers, reason=reason)
        data = conn.send(response) or b""
        if method != b"HEAD":
            data += conn.send(h11.Data(data=answer.body)) or b""
        data += conn.send(h11.EndOfMessage()) or b""
        writer.write(data)
        await asyncio.wait_for(writer.drain(), self._config.timeout.total_seconds())


_BUSY_BODY = error_answer(503, "too many admin connections").body
# Sent before any request is read, so no h11 connection state exists to frame it.
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(_BUSY_BODY)
    + _BUSY_BODY
)
