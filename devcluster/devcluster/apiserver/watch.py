"""Watch streams: newline-delimited JSON events with kube-apiserver's version semantics."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from devcluster.apiserver.resources import ResourceType
from devcluster.apiserver.status import gone
from devcluster.apiserver.store import Obj, Store, Watcher, watching

BOOKMARK_INTERVAL_S = 60.0  # kube-apiserver's bookmark frequency
PRE_TIMEOUT_BOOKMARK_S = 2.0  # and one shortly before the watch times out
MIN_REQUEST_TIMEOUT_S = 1800  # a watch without timeoutSeconds lasts 1800-3600 s
DISCONNECT_POLL_S = 1.0

Render = Callable[[str, Obj, bytes | None], bytes]


@dataclass(frozen=True)
class WatchOptions:
    since: int | None  # None: start with the current state as ADDED events
    timeout_s: float | None
    bookmarks: bool
    initial_events_end: bool  # sendInitialEvents=true: mark the end with a bookmark


def json_line(event_type: str, obj: Obj, raw: bytes | None) -> bytes:
    body = raw if raw is not None else json.dumps(obj, separators=(",", ":")).encode()
    return b'{"type":"' + event_type.encode() + b'","object":' + body + b"}\n"


def bookmark_object(resource: ResourceType, rv: int, initial_end: bool = False) -> Obj:
    metadata: Obj = {"resourceVersion": str(rv)}
    if initial_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": metadata}


async def serve_watch(
    request: web.Request,
    store: Store,
    resource: ResourceType,
    watcher: Watcher,
    options: WatchOptions,
    render: Render = json_line,
) -> web.StreamResponse:
    initial = store.watch(resource.key, watcher, options.since)
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    response.enable_chunked_encoding()
    with watching(store, resource.key, watcher):
        await response.prepare(request)
        if initial is None:
            # As kube-apiserver: 200, then one ERROR event carrying a 410 Status.
            oldest = store.oldest_replayable(resource.key)
            error = gone(f"too old resource version: {options.since} ({oldest})").status()
            await response.write(render("ERROR", error, None))
            await response.write_eof()
            return response
        for event in initial:
            await response.write(render(event.type, event.obj, event.raw))
        if options.initial_events_end:
            await response.write(
                render("BOOKMARK", bookmark_object(resource, store.rv, True), None)
            )
        await _stream(request, response, store, resource, watcher, options, render)
    return response


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    store: Store,
    resource: ResourceType,
    watcher: Watcher,
    options: WatchOptions,
    render: Render,
) -> None:
    started = time.monotonic()
    timeout = options.timeout_s
    if timeout is None:
        timeout = MIN_REQUEST_TIMEOUT_S * (1 + random.random())  # noqa: S311 - jitter only
    deadline = started + timeout
    next_bookmark = _next_bookmark(started, deadline)
    queue = watcher.queue
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        if queue.empty():
            wake = min(
                deadline, next_bookmark if options.bookmarks else deadline, now + DISCONNECT_POLL_S
            )
            try:
                async with asyncio.timeout(wake - now):
                    first = await queue.get()
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    return
                if options.bookmarks and time.monotonic() >= next_bookmark:
                    mark = bookmark_object(resource, store.rv)
                    await response.write(render("BOOKMARK", mark, None))
                    next_bookmark = _next_bookmark(time.monotonic(), deadline)
                continue
        else:
            first = queue.get_nowait()
        # Send everything already queued in one write: one TLS record, one syscall.
        batch = [first]
        while not queue.empty():
            batch.append(queue.get_nowait())
        closed = None in batch
        lines = [render(e.type, e.obj, e.raw) for e in batch if e is not None]
        if lines:
            await response.write(b"".join(lines))
        if closed:
            break  # the server stops, or the watcher fell too far behind
    await response.write_eof()


def _next_bookmark(now: float, deadline: float) -> float:
    heartbeat = now + BOOKMARK_INTERVAL_S
    pre_timeout = deadline - PRE_TIMEOUT_BOOKMARK_S
    return pre_timeout if now < pre_timeout < heartbeat else heartbeat
