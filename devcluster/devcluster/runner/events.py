"""Events (core/v1) as a kubelet's event recorder writes them, and their expiry.

One Event per object, container, reason and message: a repeat counts (`count`,
`lastTimestamp`) instead of adding an Event, and is written at most every
REWRITE_INTERVAL_S, so a probe failing every second costs one write per interval.
Events older than EVENT_TTL_S are deleted, as kube-apiserver's --event-ttl (1 h) does;
the devcluster's store keeps objects until they are deleted.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from devcluster.runner import podutil
from devcluster.runner.kube import EVENT, MERGE_PATCH, Kube, Obj

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
REWRITE_INTERVAL_S = 5.0
EVENT_TTL_S = 3600.0
EXPIRY_PERIOD_S = 600.0


@dataclass
class _Series:
    """One Event as recorded so far, and when it was last written."""

    name: str
    involved: Obj
    count: int
    first: str
    last: str
    written_at: float = -math.inf
    created: bool = False
    scheduled: bool = False


def container_field_path(container: str, init: bool = False) -> str:
    """How an Event names a container of its pod (`spec.containers{app}`)."""
    return f"spec.{'initContainers' if init else 'containers'}{{{container}}}"


class EventRecorder:
    """Records Events from the asyncio loop; the writes happen in the background."""

    def __init__(self, kube: Kube, component: str, host: str) -> None:
        self.kube = kube
        self.source = {"component": component, "host": host}
        self._series: dict[tuple[str, ...], _Series] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def record(
        self, obj: Obj, event_type: str, reason: str, message: str, field_path: str = ""
    ) -> None:
        meta = obj["metadata"]
        key = (meta["uid"], field_path, event_type, reason, message)
        now = podutil.timestamp()
        series = self._series.get(key)
        if series is None:
            involved = {
                "apiVersion": obj.get("apiVersion", "v1"),
                "kind": obj.get("kind", "Pod"),
                "namespace": meta.get("namespace", "default"),
                "name": meta["name"],
                "uid": meta["uid"],
            }
            if field_path:
                involved["fieldPath"] = field_path
            name = f"{meta['name']}.{time.time_ns():x}"
            series = _Series(name, involved, 1, now, now)
            self._series[key] = series
        else:
            series.count += 1
            series.last = now
        if not series.scheduled:
            series.scheduled = True
            delay = max(0.0, series.written_at + REWRITE_INTERVAL_S - time.monotonic())
            self._spawn(self._write(key, series, delay))

    def forget(self, uid: str) -> None:
        """Drop what is kept about an object that is gone (its Events expire later)."""
        for key in [k for k in self._series if k[0] == uid]:
            del self._series[key]

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _write(self, key: tuple[str, ...], series: _Series, delay: float) -> None:
        await asyncio.sleep(delay)
        series.scheduled = False
        series.written_at = time.monotonic()
        namespace = series.involved["namespace"]
        counted = {"count": series.count, "lastTimestamp": series.last}
        try:
            if series.created:
                await self.kube.patch(
                    EVENT, series.name, counted, namespace, content_type=MERGE_PATCH
                )
                return
            await self.kube.create(EVENT, self._event(key, series), namespace)
            series.created = True
        except Exception as error:
            # An Event is best effort (its namespace may be going away, the API server
            # restarting), as in client-go; a patch of a vanished Event creates it again.
            log.debug("event %s/%s not written: %s", namespace, series.name, error)
            if isinstance(error, ApiException) and error.status == 404:
                series.created = False

    def _event(self, key: tuple[str, ...], series: _Series) -> Obj:
        _uid, _field_path, event_type, reason, message = key
        return {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": series.name, "namespace": series.involved["namespace"]},
            "involvedObject": series.involved,
            "type": event_type,
            "reason": reason,
            "message": message,
            "source": self.source,
            "reportingComponent": self.source["component"],
            "reportingInstance": self.source["host"],
            "count": series.count,
            "firstTimestamp": series.first,
            "lastTimestamp": series.last,
        }

    async def close(self) -> None:
        """Drop the writes still waiting for their interval (a stopping node)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def last_seen(event: Obj) -> str:
    """When an Event last happened (RFC 3339; compares as text)."""
    return str(
        event.get("lastTimestamp")
        or event.get("eventTime")
        or event["metadata"].get("creationTimestamp")
        or ""
    )


async def expire_events(kube: Kube, ttl_s: float = EVENT_TTL_S) -> int:
    """Delete every Event last seen more than ttl_s ago; answers how many."""
    events = (await asyncio.to_thread(kube.list_sync, EVENT)).get("items") or []
    cutoff = podutil.timestamp(podutil.now() - datetime.timedelta(seconds=ttl_s))
    expired = [e for e in events if last_seen(e) < cutoff]
    for event in expired:
        meta = event["metadata"]
        await kube.delete(EVENT, meta["name"], meta.get("namespace"))
    return len(expired)


async def expire_events_forever(kube: Kube) -> None:
    while True:
        try:
            await expire_events(kube)
        except Exception as error:  # the API server may be restarting: try next period
            log.warning("expiring events failed: %s", error)
        await asyncio.sleep(EXPIRY_PERIOD_S)
