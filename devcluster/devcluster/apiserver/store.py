"""In-memory object storage with one global resourceVersion, watch history and fan-out.

This is the etcd of the devcluster: it knows nothing of kinds' semantics (the registry
does), only keys, versions and events. Every object is kept both as a dict and as its
serialized JSON so that lists and watch events are written without re-encoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pathlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from devcluster.apiserver.resources import RESOURCES

log = logging.getLogger(__name__)

ResourceKey = tuple[str, str]  # (group, plural)
ObjectKey = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped kinds
Obj = dict[str, Any]

DEFAULT_HISTORY = 2000
WATCHER_BACKLOG = 10_000  # a watcher this far behind is closed, as kube-apiserver does


def encode(obj: Obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(slots=True)
class Entry:
    obj: Obj
    raw: bytes


@dataclass(slots=True)
class Event:
    type: str  # ADDED, MODIFIED, DELETED
    obj: Obj
    raw: bytes
    prev: Obj | None
    rv: int


@dataclass(eq=False)
class Watcher:
    """One watch: the filter decides, per stored event, what (if anything) it sees."""

    namespace: str | None
    accepts: Callable[[Obj], bool]  # selector match; an object always carries its namespace
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)
    closed: bool = False

    def offer(self, event: Event) -> None:
        if self.closed:
            return
        namespace = event.obj.get("metadata", {}).get("namespace", "")
        if self.namespace is not None and namespace != self.namespace:
            return
        delivered = self.view(event)
        if delivered is None:
            return
        if self.queue.qsize() >= WATCHER_BACKLOG:
            self.close()
            return
        self.queue.put_nowait(delivered)

    def view(self, event: Event) -> Event | None:
        """The event as this watcher sees it: selector transitions become ADDED/DELETED."""
        now = event.type != "DELETED" and self.accepts(event.obj)
        before = event.prev is not None and self.accepts(event.prev)
        if event.type == "DELETED":
            return event if before else None
        if now and before:
            return event
        if now:
            return (
                Event("ADDED", event.obj, event.raw, event.prev, event.rv) if event.prev else event
            )
        if before:
            # As kube-apiserver: the previous content, stamped with the event's version.
            assert event.prev is not None
            gone = json.loads(encode(event.prev))
            gone["metadata"]["resourceVersion"] = str(event.rv)
            return Event("DELETED", gone, encode(gone), None, event.rv)
        return None

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)


class History:
    """The bounded list of a resource's recent events, for watch replay."""

    def __init__(self, size: int, floor: int) -> None:
        self.events: deque[Event] = deque(maxlen=size)
        self.floor = floor  # every event with rv > floor is still held

    def append(self, event: Event) -> None:
        if len(self.events) == self.events.maxlen:
            self.floor = self.events[0].rv
        self.events.append(event)

    def since(self, rv: int) -> list[Event] | None:
        """Events after rv, or None when some of them were already dropped."""
        if rv < self.floor:
            return None
        return [event for event in self.events if event.rv > rv]


class Store:
    def __init__(self, history_size: int = DEFAULT_HISTORY) -> None:
        self.rv = 0
        self._history_size = history_size
        self._objects: dict[ResourceKey, dict[ObjectKey, Entry]] = {r.key: {} for r in RESOURCES}
        self._history: dict[ResourceKey, History] = {}
        self._watchers: dict[ResourceKey, set[Watcher]] = {r.key: set() for r in RESOURCES}
        self._advanced: asyncio.Event | None = None  # set by the next write
        self._reset_histories()

    def _reset_histories(self) -> None:
        self._history = {key: History(self._history_size, self.rv) for key in self._objects}

    # reads -----------------------------------------------------------------------------

    def get(self, resource: ResourceKey, key: ObjectKey) -> Entry | None:
        return self._objects[resource].get(key)

    def entries(self, resource: ResourceKey, namespace: str | None = None) -> list[Entry]:
        """Entries sorted by (namespace, name), as etcd keys sort."""
        objects = self._objects[resource]
        keys = sorted(objects)
        if namespace is not None:
            keys = [k for k in keys if k[0] == namespace]
        return [objects[k] for k in keys]

    def count_in_namespace(self, namespace: str) -> int:
        return sum(
            1 for objects in self._objects.values() for key in objects if key[0] == namespace
        )

    def namespaced_keys(self, namespace: str) -> Iterator[tuple[ResourceKey, ObjectKey]]:
        for resource, objects in self._objects.items():
            for key in list(objects):
                if key[0] == namespace:
                    yield resource, key

    # writes: each stamps the next resourceVersion and publishes one event -------------

    def _next_rv(self, obj: Obj) -> int:
        self.rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        return self.rv

    def put(self, resource: ResourceKey, key: ObjectKey, obj: Obj) -> Obj:
        """Create or replace; the caller has done every check."""
        previous = self._objects[resource].get(key)
        rv = self._next_rv(obj)
        raw = encode(obj)
        self._objects[resource][key] = Entry(obj, raw)
        kind = "MODIFIED" if previous else "ADDED"
        self._publish(resource, Event(kind, obj, raw, previous.obj if previous else None, rv))
        return obj

    def remove(self, resource: ResourceKey, key: ObjectKey) -> Obj | None:
        entry = self._objects[resource].pop(key, None)
        if entry is None:
            return None
        obj: Obj = json.loads(entry.raw)
        rv = self._next_rv(obj)
        self._publish(resource, Event("DELETED", obj, encode(obj), entry.obj, rv))
        return obj

    def _publish(self, resource: ResourceKey, event: Event) -> None:
        if self._advanced is not None:
            self._advanced.set()
            self._advanced = None
        self._history[resource].append(event)
        for watcher in list(self._watchers[resource]):
            watcher.offer(event)

    async def wait_for_version(self, version: int, timeout_s: float) -> bool:
        """Wait until the store has reached `version`; False when it did not in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.rv < version:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            if self._advanced is None:
                self._advanced = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._advanced.wait(), remaining)
        return True

    # watches ---------------------------------------------------------------------------

    def watch(
        self, resource: ResourceKey, watcher: Watcher, since: int | None
    ) -> list[Event] | None:
        """Register watcher; return what it must see first: synthetic ADDED events for
        the current state when `since` is None, else the replayed history after `since`
        (None when that history is gone: the caller answers 410)."""
        if since is None:
            initial = [
                Event("ADDED", entry.obj, entry.raw, None, self.rv)
                for entry in self.entries(resource, watcher.namespace)
            ]
            initial = [e for e in initial if watcher.accepts(e.obj)]
        else:
            replay = self._history[resource].since(since)
            if replay is None:
                return None
            initial = []
            for event in replay:
                namespace = event.obj.get("metadata", {}).get("namespace", "")
                if watcher.namespace is not None and namespace != watcher.namespace:
                    continue
                seen = watcher.view(event)
                if seen is not None:
                    initial.append(seen)
        self._watchers[resource].add(watcher)
        return initial

    def unwatch(self, resource: ResourceKey, watcher: Watcher) -> None:
        self._watchers[resource].discard(watcher)

    def oldest_replayable(self, resource: ResourceKey) -> int:
        return self._history[resource].floor

    def close_watchers(self) -> None:
        for watchers in self._watchers.values():
            for watcher in list(watchers):
                watcher.close()

    # persistence -----------------------------------------------------------------------

    def save(self, path: pathlib.Path) -> None:
        """Write a snapshot atomically, so a restart keeps objects and versions. It is
        assembled from the stored JSON, without encoding any object again."""
        groups = [
            json.dumps(f"{group}/{plural}").encode()
            + b":["
            + b",".join(entry.raw for entry in objects.values())
            + b"]"
            for (group, plural), objects in self._objects.items()
            if objects
        ]
        snapshot = b'{"resourceVersion":%d,"objects":{' % self.rv + b",".join(groups) + b"}}"
        temporary = path.with_suffix(".tmp")
        temporary.write_bytes(snapshot)
        os.replace(temporary, path)

    def load(self, path: pathlib.Path) -> bool:
        if not path.exists():
            return False
        snapshot = json.loads(path.read_text())
        self.rv = int(snapshot["resourceVersion"])
        for name, objects in snapshot["objects"].items():
            group, _, plural = name.rpartition("/")
            if (group, plural) not in self._objects:
                log.warning("dropping stored %s: no longer served", name)
                continue
            for obj in objects:
                metadata = obj["metadata"]
                key = (metadata.get("namespace", ""), metadata["name"])
                self._objects[(group, plural)][key] = Entry(obj, encode(obj))
        self._reset_histories()
        return True


@contextlib.contextmanager
def watching(store: Store, resource: ResourceKey, watcher: Watcher) -> Iterator[Watcher]:
    try:
        yield watcher
    finally:
        watcher.closed = True
        store.unwatch(resource, watcher)
