"""List-then-watch caches of API objects, as client-go's informers keep them.

A thread per informer lists, then watches from the list's resourceVersion, and relists
when the server answers 410 Expired. Events reach asyncio handlers through the loop; the
cache lives on the loop's thread. `wait_for` lets a controller read its own writes: after
a write, wait until the watch has delivered that exact resourceVersion of the object.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from kubernetes.client.exceptions import ApiException

from devcluster.runner.kube import Kind, Kube, Obj

log = logging.getLogger(__name__)

Handler = Callable[[str, Obj, Obj | None], None]  # (event type, object, previous object)
WATCH_TIMEOUT_S = 300
RETRY_DELAY_S = 1.0
READ_OWN_WRITE_TIMEOUT_S = 5.0


def key_of(obj: Obj) -> str:
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


class Informer:
    """A cache of one kind (optionally narrowed by selectors) fed by list and watch."""

    def __init__(
        self,
        kube: Kube,
        kind: Kind,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> None:
        self.kube = kube
        self.kind = kind
        self._query: dict[str, Any] = {}
        if label_selector:
            self._query["label_selector"] = label_selector
        if field_selector:
            self._query["field_selector"] = field_selector
        self.cache: dict[str, Obj] = {}
        self._handlers: list[Handler] = []
        self._waiters: dict[tuple[str, str], list[asyncio.Future[None]]] = {}
        self._synced = asyncio.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(
            target=self._run, name=f"informer-{self.kind.kind}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def objects(self, namespace: str | None = None) -> list[Obj]:
        objects = list(self.cache.values())
        if namespace is None:
            return objects
        return [o for o in objects if o["metadata"].get("namespace") == namespace]

    def get(self, key: str) -> Obj | None:
        return self.cache.get(key)

    async def wait_for(self, written: Obj) -> None:
        """Return once the watch has delivered this version of the object (or time out)."""
        key = key_of(written)
        version = str(written["metadata"].get("resourceVersion", ""))
        current = self.cache.get(key)
        if current is not None and current["metadata"].get("resourceVersion") == version:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault((key, version), []).append(future)
        try:
            await asyncio.wait_for(future, READ_OWN_WRITE_TIMEOUT_S)
        except TimeoutError:
            log.debug("%s %s@%s not seen in time", self.kind.kind, key, version)
        finally:
            waiters = self._waiters.get((key, version), [])
            if future in waiters:
                waiters.remove(future)
            if not waiters:
                self._waiters.pop((key, version), None)

    # loop-thread side ----------------------------------------------------------------------

    def _apply(self, event_type: str, obj: Obj) -> None:
        key = key_of(obj)
        previous = self.cache.get(key)
        if event_type == "DELETED":
            self.cache.pop(key, None)
        else:
            self.cache[key] = obj
        for future in self._waiters.pop((key, str(obj["metadata"].get("resourceVersion"))), []):
            if not future.done():
                future.set_result(None)
        for handler in self._handlers:
            try:
                handler(event_type, obj, previous)
            except Exception:
                log.exception("handler for %s %s failed", self.kind.kind, key)

    def _replace(self, objects: list[Obj]) -> None:
        """A relist: synthesise the events a watcher would have seen."""
        fresh = {key_of(o): o for o in objects}
        for key, old in list(self.cache.items()):
            if key not in fresh:
                self._apply("DELETED", old)
        for key, obj in fresh.items():
            cached = self.cache.get(key)
            if cached is None:
                self._apply("ADDED", obj)
            elif cached["metadata"].get("resourceVersion") != obj["metadata"].get(
                "resourceVersion"
            ):
                self._apply("MODIFIED", obj)
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)
        self._waiters.clear()
        self._synced.set()

    # informer thread -----------------------------------------------------------------------

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        if self._loop.is_closed():
            self._stop.set()
            return
        self._loop.call_soon_threadsafe(callback, *args)

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                listing = self.kube.list_sync(self.kind, **self._query)
                for item in listing.get("items", []):
                    item.setdefault("apiVersion", self.kind.api_version)
                    item.setdefault("kind", self.kind.kind)
                self._post(self._replace, listing.get("items", []))
                failures = 0
                version = str(listing["metadata"]["resourceVersion"])
                while not self._stop.is_set():
                    version = self._watch_once(version)
            except _Expired:
                log.debug("%s watch expired: relisting", self.kind.kind)
            except Exception as error:
                if self._stop.is_set():
                    return
                failures += 1
                if failures == 1:  # once per outage
                    log.warning("%s list/watch failed: %s; retrying", self.kind.kind, error)
                self._stop.wait(RETRY_DELAY_S)

    def _watch_once(self, version: str) -> str:
        for event in self.kube.watch_sync(self.kind, version, WATCH_TIMEOUT_S, **self._query):
            if self._stop.is_set():
                break
            event_type = event.get("type")
            obj = event.get("object") or {}
            if event_type == "ERROR":
                if obj.get("code") == 410:
                    raise _Expired
                raise ApiException(status=obj.get("code", 500), reason=obj.get("message"))
            version = str(obj.get("metadata", {}).get("resourceVersion", version))
            if event_type == "BOOKMARK":
                continue
            self._post(self._apply, str(event_type), obj)
        return version


class _Expired(Exception):
    """The watch's resourceVersion is older than the server's history."""
