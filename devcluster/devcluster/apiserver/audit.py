"""The audit log, as kube-apiserver's --audit-log-path writes it at level Metadata.

One JSON line per request, an audit.k8s.io/v1 Event at stage ResponseComplete; a
long-running request (a watch, a pod log) is logged also when its response starts, at
stage ResponseStarted. Metadata level: who, what and the response code, never a request
or response body (Secrets), nor an error message (it may quote the body). Lines are
buffered and flushed a moment after the last one, so a busy server makes one small
write per request and few syscalls.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import IO, Any

from aiohttp import web

from devcluster.apiserver.auth import Attributes, UserInfo

DEFAULT_FILE = "audit.log"
DEFAULT_MAX_MEGABYTES = 100
FLUSH_AFTER_S = 0.25  # a reader (tail -f, a test) sees a line at most this late
BUFFER_BYTES = 64 * 1024
# As kube-apiserver's long-running check: these verbs and subresources stream.
LONG_RUNNING_VERBS = frozenset({"watch", "proxy"})
LONG_RUNNING_SUBRESOURCES = frozenset({"attach", "exec", "proxy", "log", "portforward"})

Event = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def micro_time(seconds: float) -> str:
    """meta/v1 MicroTime: RFC 3339 in UTC with microseconds."""
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{int(seconds % 1 * 1_000_000):06d}Z"


def _user(info: UserInfo | None) -> dict[str, Any]:
    if info is None:  # the request failed authentication
        return {}
    user: dict[str, Any] = {"username": info.name}
    if info.uid:
        user["uid"] = info.uid
    user["groups"] = list(info.groups)
    if info.extra:
        user["extra"] = info.extra
    return user


@dataclass(slots=True)
class AuditRecord:
    """What is known of one request; handlers fill in who and what as they learn it."""

    audit_id: str
    received: float
    request_uri: str
    verb: str
    source_ip: str
    user_agent: str
    user: UserInfo | None = None
    impersonated: UserInfo | None = None
    object_ref: dict[str, str] | None = None
    decision: str = ""  # "allow" or "forbid" once authorization has decided
    long_running: bool = False
    started_code: int = 0  # the code logged at ResponseStarted; 0: not logged
    completed: bool = False

    @classmethod
    def begin(cls, request: web.Request) -> AuditRecord:
        return cls(
            audit_id=str(uuid.uuid4()),
            received=time.time(),
            request_uri=request.raw_path,
            verb=request.method.lower(),  # a non-resource request's verb
            source_ip=request.remote or "",
            user_agent=request.headers.get("User-Agent", ""),
        )

    def resource_request(self, attributes: Attributes, version: str) -> None:
        """A resource request: its Kubernetes verb and the objectRef, as RequestInfo."""
        self.verb = attributes.verb
        ref = {"resource": attributes.resource}
        for key, value in (
            ("namespace", attributes.namespace),
            ("name", attributes.name),
            ("apiGroup", attributes.group),
            ("apiVersion", version),
            ("subresource", attributes.subresource),
        ):
            if value:
                ref[key] = value
        self.object_ref = ref
        self.long_running = (
            attributes.verb in LONG_RUNNING_VERBS
            or attributes.subresource in LONG_RUNNING_SUBRESOURCES
        )

    def created(self, body: Any) -> None:
        """A create names its object in the body: the objectRef takes the name from it,
        as kube-apiserver's (the body itself is never logged)."""
        metadata = body.get("metadata") if isinstance(body, dict) else None
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if self.object_ref is not None and isinstance(name, str) and name:
            self.object_ref.setdefault("name", name)

    def event(self, stage: str, code: int, reason: str, now: float) -> Event:
        status: dict[str, Any] = {"metadata": {}}
        if code >= 400:  # as for a Status response: Failure and its reason, no message
            status["status"] = "Failure"
            if reason:
                status["reason"] = reason
        status["code"] = code
        event: Event = {
            "kind": "Event",
            "apiVersion": "audit.k8s.io/v1",
            "level": "Metadata",
            "auditID": self.audit_id,
            "stage": stage,
            "requestURI": self.request_uri,
            "verb": self.verb,
            "user": _user(self.user),
        }
        if self.impersonated is not None:
            event["impersonatedUser"] = _user(self.impersonated)
        if self.source_ip:
            event["sourceIPs"] = [self.source_ip]
        if self.user_agent:
            event["userAgent"] = self.user_agent
        if self.object_ref is not None:
            event["objectRef"] = self.object_ref
        event["responseStatus"] = status
        event["requestReceivedTimestamp"] = micro_time(self.received)
        event["stageTimestamp"] = micro_time(now)
        if self.decision:
            event["annotations"] = {
                "authorization.k8s.io/decision": self.decision,
                "authorization.k8s.io/reason": "",
            }
        return event


RECORD_KEY = web.RequestKey("audit_record", AuditRecord)


class AuditLog:
    """Appends Events to a file (rotated to <path>.1 past max_bytes) or to stdout."""

    def __init__(self, path: pathlib.Path | None, max_bytes: int = 0) -> None:
        self.path = path  # None: stdout
        self.max_bytes = max_bytes  # 0: never rotate
        self._sink: IO[bytes] = sys.stdout.buffer if path is None else self._open()
        self._size = 0 if path is None else self._sink.tell()
        self._flush_pending = False

    @classmethod
    def for_flag(
        cls, flag: str | None, state_dir: pathlib.Path, max_megabytes: int
    ) -> AuditLog | None:
        """--audit-log-path: None is <state_dir>/audit.log, "-" stdout, "" no log."""
        if flag == "":
            return None
        if flag == "-":
            return cls(None)
        path = state_dir / DEFAULT_FILE if flag is None else pathlib.Path(flag)
        return cls(path.resolve(), max_megabytes * 1024 * 1024)

    def _open(self) -> IO[bytes]:
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Who called the API, and when, is for the cluster's operator only.
        descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(descriptor, "ab", buffering=BUFFER_BYTES)

    def write(self, event: Event) -> None:
        line = json.dumps(event, separators=(",", ":")).encode() + b"\n"
        self._sink.write(line)
        self._size += len(line)
        if self.max_bytes and self._size > self.max_bytes:
            self._rotate()
        elif not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_later(FLUSH_AFTER_S, self.flush)

    def flush(self) -> None:
        self._flush_pending = False
        if not self._sink.closed:
            self._sink.flush()

    def _rotate(self) -> None:
        assert self.path is not None
        self._sink.close()
        os.replace(self.path, self.path.with_name(self.path.name + ".1"))
        self._sink = self._open()
        self._size = 0

    def close(self) -> None:
        if self.path is None:
            self.flush()
        else:
            self._sink.close()

    # the request's stages --------------------------------------------------------------

    def started(self, record: AuditRecord, code: int) -> None:
        record.started_code = code
        self.write(record.event("ResponseStarted", code, "", time.time()))

    def complete(self, record: AuditRecord, code: int, reason: str = "") -> None:
        if record.completed:
            return
        record.completed = True
        if record.long_running and not record.started_code:
            self.started(record, code)
        self.write(record.event("ResponseComplete", code, reason, time.time()))


def _failure_reason(response: web.StreamResponse) -> str:
    """The reason of an error's Status body (errors only: their bodies are small)."""
    if response.status < 400 or not isinstance(response, web.Response):
        return ""
    body = response.body
    if not isinstance(body, bytes) or response.content_type != "application/json":
        return ""
    try:
        reason = json.loads(body).get("reason", "")
    except (ValueError, AttributeError):
        return ""
    return reason if isinstance(reason, str) else ""


def install(app: web.Application, log: AuditLog) -> None:
    """Audit every request of `app`: the middleware must come first, outside the one
    that turns errors into Status responses."""

    @web.middleware
    async def audit(request: web.Request, handler: Handler) -> web.StreamResponse:
        record = AuditRecord.begin(request)
        request[RECORD_KEY] = record
        try:
            response = await handler(request)
        except web.HTTPException as error:
            log.complete(record, error.status)
            raise
        except BaseException:
            # Cancelled (the server stops): a started stream ended with its own code.
            log.complete(record, record.started_code or 500)
            raise
        log.complete(record, response.status, _failure_reason(response))
        return response

    async def on_prepare(request: web.Request, response: web.StreamResponse) -> None:
        record = request.get(RECORD_KEY)
        if record is None:
            return
        response.headers["Audit-Id"] = record.audit_id  # as kube-apiserver answers
        if record.long_running and not record.completed and not record.started_code:
            log.started(record, response.status)

    app.middlewares.insert(0, audit)
    app.on_response_prepare.append(on_prepare)


def read_events(path: pathlib.Path) -> list[Event]:
    """Every Event of an audit log file, oldest first, its rotated part included."""
    events: list[Event] = []
    for part in (path.with_name(path.name + ".1"), path):
        try:
            text = part.read_text()
        except FileNotFoundError:
            continue
        events.extend(json.loads(line) for line in text.splitlines() if line.endswith("}"))
    return events
