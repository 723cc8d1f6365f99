"""One generic list-then-watch loop: the only place that watches the Kubernetes API.

The official client is synchronous, so each Informer runs its list and watch requests
in one dedicated thread and hands every change to the event loop, where the state
lives; listeners and snapshot() therefore only ever run on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import kubernetes.client
import urllib3
from kubernetes.client.exceptions import ApiException

from micro.kube.backoff import Backoff
from micro.kube.resources import Resource
from micro.kube.rest import JsonObject, Query, get_json, open_get

log = logging.getLogger("micro.kube.informer")

EventType = Literal["ADDED", "MODIFIED", "DELETED"]
HTTP_GONE = 410
LIST_PAGE_SIZE = 500
# A watch that ends this soon with no event counts as a failure, so a server that
# accepts and drops watches at once does not make the loop spin.
MIN_HEALTHY_WATCH_S = 1.0


@dataclass(frozen=True)
class InformerEvent:
    """One change of the watched set. For DELETED, object is the last known state."""

    type: EventType
    key: str  # "<namespace>/<name>"
    object: JsonObject


Listener = Callable[[Sequence[InformerEvent]], None]


class _Expired(Exception):
    """The watch's resourceVersion is too old (410 Gone): list again."""


class _StreamError(Exception):
    """The watch stream reported an error other than 410."""


def object_key(obj: JsonObject) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace', '')}/{metadata.get('name', '')}"


def _resource_version(obj: JsonObject) -> str:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("resourceVersion") or "")


class Informer:
    """List, then watch from the list's resourceVersion, for one resource kind in one
    namespace with optional label and field selectors.

    - A 410 (as an ERROR event or an ApiException) relists; listeners get the difference.
    - A broken stream or an unreachable API reconnects with jittered exponential backoff
      and keeps the last known state meanwhile.
    - Objects are plain JSON dicts exactly as the API sends them (list items get their
      kind and apiVersion filled in, as watch objects carry them). Treat them as read-only.

    Use on one event loop: `await start()`, `await wait_synced()`, `snapshot()`,
    `subscribe(listener)`, `await stop()` (or `async with`).
    """

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        resource: Resource,
        *,
        namespace: str,
        label_selector: str = "",
        field_selector: str = "",
        backoff: Backoff | None = None,
        watch_timeout_s: int = 300,
        connect_timeout_s: float = 5.0,
        list_timeout_s: float = 15.0,
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.synced = asyncio.Event()
        self._api = api
        self._backoff = backoff or Backoff()
        self._watch_timeout_s = watch_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._list_timeout_s = list_timeout_s
        self._objects: dict[str, JsonObject] = {}
        self._listeners: list[Listener] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._response: urllib3.BaseHTTPResponse | None = None
        self._last_error: str | None = None

    def __repr__(self) -> str:
        return (
            f"Informer({self.resource.plural}, namespace={self.namespace!r}, "
            f"labels={self.label_selector!r}, fields={self.field_selector!r})"
        )

    # public API, on the event loop ---------------------------------------------------

    async def start(self) -> None:
        """Start the background list-then-watch; returns at once (see wait_synced)."""
        if self._thread is not None:
            raise RuntimeError(f"{self!r} is already started")
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=repr(self), daemon=True)
        self._thread.start()

    async def wait_synced(self, limit_s: float | None = None) -> bool:
        """True once the first list has been applied; False when limit_s passes first."""
        try:
            await asyncio.wait_for(self.synced.wait(), limit_s)
        except TimeoutError:
            return False
        return True

    def snapshot(self) -> dict[str, JsonObject]:
        """The current objects by "<namespace>/<name>" (a new dict; objects are shared)."""
        return dict(self._objects)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call listener(events) on the loop after every change; returns unsubscribe.

        A watch event arrives as one event; a relist arrives as one batch holding the
        whole difference. Listeners must not block: they run on the event loop.
        """
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    @property
    def last_error(self) -> str | None:
        """Why the last list or watch failed; None while the connection is healthy."""
        return self._last_error

    async def stop(self, join_limit_s: float = 20.0) -> None:
        """Stop watching and wait for the thread to finish."""
        with self._lock:
            self._stopping.set()
            response = self._response
        if response is not None:
            _unblock(response)
        thread, self._thread = self._thread, None
        if thread is not None:
            await asyncio.to_thread(thread.join, join_limit_s)
            if thread.is_alive():
                log.warning("%r: the watch thread did not stop within %.0f s", self, join_limit_s)

    async def __aenter__(self) -> Informer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # state changes, on the event loop ------------------------------------------------

    def _replace(self, items: list[JsonObject]) -> None:
        fresh = {object_key(obj): obj for obj in items}
        events: list[InformerEvent] = []
        for key, obj in fresh.items():
            old = self._objects.get(key)
            if old is None:
                events.append(InformerEvent("ADDED", key, obj))
            elif _resource_version(old) != _resource_version(obj) or old != obj:
                events.append(InformerEvent("MODIFIED", key, obj))
        events.extend(
            InformerEvent("DELETED", key, obj)
            for key, obj in self._objects.items()
            if key not in fresh
        )
        self._objects = fresh
        self._notify(events)
        self.synced.set()

    def _apply(self, kind: str, obj: JsonObject) -> None:
        key = object_key(obj)
        if kind == "DELETED":
            last = self._objects.pop(key, None)
            if last is not None:
                self._notify([InformerEvent("DELETED", key, obj)])
            return
        event_type: EventType = "MODIFIED" if key in self._objects else "ADDED"
        self._objects[key] = obj
        self._notify([InformerEvent(event_type, key, obj)])

    def _notify(self, events: list[InformerEvent]) -> None:
        if not events:
            return
        for listener in list(self._listeners):
            try:
                listener(events)
            except Exception:
                log.exception("%r: a listener failed", self)

    # the watch thread ----------------------------------------------------------------

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self._stopping.set()

    def _selectors(self) -> Query:
        query: Query = []
        if self.label_selector:
            query.append(("labelSelector", self.label_selector))
        if self.field_selector:
            query.append(("fieldSelector", self.field_selector))
        return query

    def _run(self) -> None:
        resource_version: str | None = None
        while not self._stopping.is_set():
            started = time.monotonic()
            listed = False
            try:
                if resource_version is None:
                    resource_version = self._list()
                    listed = True
                resource_version, delivered = self._watch(resource_version)
                if delivered or time.monotonic() - started >= MIN_HEALTHY_WATCH_S:
                    self._backoff.reset()
                    continue
                reason = "the watch ended at once"
            except (_Expired, ApiException) as error:
                if isinstance(error, ApiException) and error.status != HTTP_GONE:
                    reason = f"HTTP {error.status} {error.reason}"
                else:
                    resource_version = None
                    if not listed:
                        log.info("%r: resourceVersion expired (410): listing again", self)
                        continue
                    # A version that a list has just given being gone already means a
                    # confused server: back off rather than relist in a tight loop.
                    reason = "410 for the resourceVersion of the list just made"
            except (urllib3.exceptions.HTTPError, OSError, ValueError, _StreamError) as error:
                reason = str(error) or type(error).__name__
            except Exception as error:  # never let the thread die: the state would freeze
                log.exception("%r: unexpected failure", self)
                reason = repr(error)
            if self._stopping.is_set():
                break
            self._failed(reason)
        log.debug("%r: stopped", self)

    def _healthy(self) -> None:
        if self._last_error is not None:
            log.info("%r: connected again", self)
            self._last_error = None

    def _failed(self, reason: str) -> None:
        delay = self._backoff.next_delay()
        if self._last_error is None:
            log.warning("%r: %s; keeping the last known state, retrying", self, reason)
        self._last_error = reason
        self._stopping.wait(delay)

    def _list(self) -> str:
        items: list[JsonObject] = []
        continue_token = ""
        resource_version = ""
        while True:
            query = [*self._selectors(), ("limit", str(LIST_PAGE_SIZE))]
            if continue_token:
                query.append(("continue", continue_token))
            page = get_json(
                self._api,
                self.resource.path(self.namespace),
                query,
                (self._connect_timeout_s, self._list_timeout_s),
            )
            kind = str(page.get("kind") or "").removesuffix("List")
            api_version = page.get("apiVersion")
            for item in page.get("items") or []:
                items.append({"kind": kind, "apiVersion": api_version, **item})
            metadata = page.get("metadata") or {}
            resource_version = resource_version or str(metadata.get("resourceVersion") or "")
            continue_token = str(metadata.get("continue") or "")
            if not continue_token:
                break
        self._healthy()
        self._post(self._replace, items)
        return resource_version

    def _watch(self, resource_version: str) -> tuple[str, bool]:
        """Watch until the stream ends; (the last resourceVersion, whether any event came)."""
        server_timeout = random.randint(self._watch_timeout_s * 4 // 5, self._watch_timeout_s)  # noqa: S311
        query = [
            *self._selectors(),
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", str(server_timeout)),
        ]
        response = open_get(
            self._api,
            self.resource.path(self.namespace),
            query,
            # The read timeout catches a silently dead connection; the server ends a
            # healthy watch itself after timeoutSeconds.
            (self._connect_timeout_s, server_timeout + 30.0),
        )
        with self._lock:
            if self._stopping.is_set():
                _close(response)
                return resource_version, False
            self._response = response
        self._healthy()
        delivered = False
        try:
            for line in _lines(response):
                event = json.loads(line)
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    code = obj.get("code")
                    if code == HTTP_GONE:
                        raise _Expired
                    raise _StreamError(
                        f"watch error {code} {obj.get('reason', '')}: {obj.get('message', '')}"
                    )
                resource_version = _resource_version(obj) or resource_version
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self._post(self._apply, kind, obj)
                    delivered = True
        except (urllib3.exceptions.HTTPError, OSError):
            if not self._stopping.is_set():
                raise
        finally:
            with self._lock:
                self._response = None
            _close(response)
        return resource_version, delivered


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[bytes]:
    """Split the chunked watch body into its newline-delimited JSON events."""
    buffer = b""
    for chunk in response.stream(amt=None, decode_content=False):
        buffer += chunk
        while (newline := buffer.find(b"\n")) != -1:
            line, buffer = buffer[:newline], buffer[newline + 1 :]
            if line.strip():
                yield line
    # Bytes left without a newline are a cut-off event of a broken stream: dropped.


def _unblock(response: urllib3.BaseHTTPResponse) -> None:
    """Wake the thread blocked reading this response (closing it could deadlock on the
    SSL socket's lock, so only shut the socket's read side down)."""
    try:
        response.shutdown()
    except (AttributeError, NotImplementedError, RuntimeError, ValueError, OSError):
        connection = getattr(response, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _close(response: urllib3.BaseHTTPResponse) -> None:
    with contextlib.suppress(Exception):
        response.close()
    with contextlib.suppress(Exception):
        response.release_conn()
