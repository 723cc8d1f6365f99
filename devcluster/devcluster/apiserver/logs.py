"""GET pods/{name}/log from the files the pod runner writes:
`<state_dir>/logs/<namespace>/<pod>/<container>.log`."""

from __future__ import annotations

import asyncio
import pathlib
from collections import deque
from collections.abc import Callable

from aiohttp import web

from devcluster.apiserver.status import bad_request
from devcluster.apiserver.store import Obj

FOLLOW_POLL_S = 0.2


def log_path(state_dir: pathlib.Path, namespace: str, pod: str, container: str) -> pathlib.Path:
    return state_dir / "logs" / namespace / pod / f"{container}.log"


def choose_container(pod: Obj, wanted: str | None) -> str:
    spec = pod.get("spec") or {}
    names: list[str] = [str(c.get("name", "")) for c in (spec.get("containers") or [])]
    every = names + [c.get("name", "") for c in (spec.get("initContainers") or [])]
    name = pod["metadata"]["name"]
    if wanted:
        if wanted not in every:
            raise bad_request(f"container {wanted} is not valid for pod {name}")
        return wanted
    if len(names) != 1:
        raise bad_request(
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(names)}]"
        )
    return names[0]


def _tail(data: bytes, lines: int) -> bytes:
    if lines < 0:
        return data
    kept: deque[bytes] = deque(data.splitlines(keepends=True), maxlen=lines)
    return b"".join(kept)


def _optional_int(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as error:
        raise bad_request(f"{name}: Invalid value: {raw!r}: must be an integer") from error


def _terminated(pod: Obj, container: str) -> bool:
    state = pod.get("status") or {}
    if state.get("phase") in ("Succeeded", "Failed"):
        return True
    statuses = (state.get("containerStatuses") or []) + (state.get("initContainerStatuses") or [])
    return any(
        s.get("name") == container and "terminated" in (s.get("state") or {}) for s in statuses
    )


async def serve_log(
    request: web.Request,
    state_dir: pathlib.Path,
    pod: Obj,
    current: Callable[[], Obj | None],
) -> web.StreamResponse:
    """`current` gives the pod as stored now (None once it is gone): a follow ends when
    the pod goes or its container has terminated and its log is read to the end."""
    namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
    container = choose_container(pod, request.query.get("container"))
    path = log_path(state_dir, namespace, name, container)
    previous = request.query.get("previous") in ("true", "1")
    if previous:
        # The runner keeps the instance before the current one beside it.
        path = path.with_suffix(".previous.log")
        if not path.exists():
            raise bad_request(
                f'previous terminated container "{container}" in pod "{name}" not found'
            )
    if not path.exists():
        raise bad_request(
            f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
        )
    tail_lines = _optional_int(request, "tailLines")
    limit = _optional_int(request, "limitBytes")
    follow = request.query.get("follow") in ("true", "1") and not previous
    data = path.read_bytes()
    offset = len(data)  # a follow goes on from here: lines appended from now on are new
    if tail_lines is not None:
        data = _tail(data, tail_lines)
    if limit is not None:
        data = data[:limit]
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(data)
    if follow:
        while request.transport is not None and not request.transport.is_closing():
            now = current()
            finished = now is None or _terminated(now, container)
            size = path.stat().st_size if path.exists() else offset
            if size > offset:
                with path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read(size - offset)
                offset = size
                await response.write(chunk)
            if finished:
                break
            await asyncio.sleep(FOLLOW_POLL_S)
    await response.write_eof()
    return response
