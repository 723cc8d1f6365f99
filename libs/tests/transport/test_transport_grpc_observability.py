"""What the gRPC server chain records per call: the span, the access log record and the
metrics, with their names, labels and content, for OK, error, internal and timed-out
calls, health probes and an authenticated caller."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import grpc
import jwt
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import REGISTRY

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.auth import AccessPolicy, JwtVerifier
from micro.config.model import TracingConfig
from micro.testing.echo import EchoServicer
from micro.testing.waiting import eventually
from micro.tracing import setup_tracing
from micro.transport.grpc import GrpcServer

ECHO = "/echo.v1.EchoService/Echo"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SECRET = b"observability-test-secret-of-32-bytes!"
OpenChannel = Callable[[GrpcServer], grpc.aio.Channel]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """The spans ended during the test (the process has one tracer provider)."""
    provider = setup_tracing(
        TracingConfig(), service_name="go-micro.test-srv", service_version="v0", instance_id="t"
    )
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # later spans are no longer kept


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG, logger="micro.grpc"):
        yield caplog


def spans_of(exporter: InMemorySpanExporter, method: str) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == method.lstrip("/")]


def server_span(exporter: InMemorySpanExporter, method: str) -> ReadableSpan:
    found = spans_of(exporter, method)
    assert len(found) == 1, [s.name for s in exporter.get_finished_spans()]
    return found[0]


async def recorded(exporter: InMemorySpanExporter, method: str, calls: int = 1) -> None:
    """Wait until the server has recorded `calls` calls of method. Its span ends last,
    after the metrics and the access line, and may end after the client has its answer."""
    await eventually(lambda: len(spans_of(exporter, method)) >= calls, f"{calls} {method} span(s)")


def access_record(caplog: pytest.LogCaptureFixture, method: str) -> logging.LogRecord:
    # The access record is the one with fields (a failure also logs its traceback).
    found = [
        r
        for r in caplog.records
        if r.name == "micro.grpc" and getattr(r, "fields", {}).get("method") == method
    ]
    assert len(found) == 1, [r.getMessage() for r in caplog.records]
    return found[0]


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Counts:
    """micro_server_* samples of one method, read before and after the calls."""

    def __init__(self, method: str, code: str) -> None:
        self.method, self.code = method, code
        self.before = self.read()

    def read(self) -> tuple[float, float, float]:
        labels = {"transport": "grpc", "method": self.method}
        return (
            sample("micro_server_requests_total", **labels, code=self.code),
            sample("micro_server_errors_total", **labels, code=self.code),
            sample("micro_server_request_duration_seconds_count", **labels),
        )

    def added(self) -> tuple[float, float, float]:
        after = self.read()
        return (
            after[0] - self.before[0],
            after[1] - self.before[1],
            after[2] - self.before[2],
        )


CASES = [
    # text, final code, access log level
    ("hello", grpc.StatusCode.OK, logging.INFO),
    ("code:NOT_FOUND", grpc.StatusCode.NOT_FOUND, logging.INFO),
    ("boom", grpc.StatusCode.INTERNAL, logging.ERROR),
    ("sleep:5", grpc.StatusCode.DEADLINE_EXCEEDED, logging.INFO),
]


@pytest.mark.parametrize(("name", "code", "level"), CASES, ids=[c[1].name for c in CASES])
async def test_each_call_has_one_span_one_access_record_and_its_metrics(
    name: str,
    code: grpc.StatusCode,
    level: int,
    start_grpc: Any,
    grpc_channel_to: OpenChannel,
    spans: InMemorySpanExporter,
    access_log: pytest.LogCaptureFixture,
) -> None:
    server = await start_grpc(deadline=timedelta(milliseconds=200))
    stub = echo_pb2_grpc.EchoServiceStub(grpc_channel_to(server))
    counts = Counts(ECHO, code.name)
    parent = (("traceparent", f"00-{TRACE_ID}-00f067aa0ba902b7-01"),)
    if code is grpc.StatusCode.OK:
        assert (await stub.Echo(echo_pb2.EchoRequest(text=name), metadata=parent)).text == name
    else:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.Echo(echo_pb2.EchoRequest(text=name), metadata=parent)
        assert failure.value.code() is code

    await recorded(spans, ECHO)
    span = server_span(spans, ECHO)
    assert span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None
    assert span.parent.span_id == 0x00F067AA0BA902B7
    assert dict(span.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.method": ECHO,
        "rpc.grpc.status_code": code.value[0],
    }
    if code is grpc.StatusCode.OK:
        assert span.status.status_code is StatusCode.UNSET
    else:
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == code.name

    record = access_record(access_log, ECHO)
    assert record.levelno == level
    assert record.getMessage() == f"[gRPC] {ECHO} {code.name}"
    fields = record.fields  # type: ignore[attr-defined]
    assert set(fields) == {"method", "code", "duration_ms", "peer"}
    assert (fields["method"], fields["code"]) == (ECHO, code.name)
    assert isinstance(fields["duration_ms"], float)
    assert fields["duration_ms"] >= 0
    assert fields["peer"].startswith("ipv4:127.0.0.1:")
    assert record.pathname.endswith("grpc_interceptors.py")  # the line's caller= field

    requests, errors, timed = counts.added()
    assert (requests, timed) == (1, 1)
    assert errors == (0 if code is grpc.StatusCode.OK else 1)


async def test_health_probes_log_at_debug_and_are_counted(
    start_grpc: Any,
    grpc_channel_to: OpenChannel,
    spans: InMemorySpanExporter,
    access_log: pytest.LogCaptureFixture,
) -> None:
    server = await start_grpc()
    counts = Counts(HEALTH_CHECK, "OK")
    health = health_pb2_grpc.HealthStub(grpc_channel_to(server))
    await health.Check(health_pb2.HealthCheckRequest(service=""))
    await recorded(spans, HEALTH_CHECK)
    assert access_record(access_log, HEALTH_CHECK).levelno == logging.DEBUG
    assert server_span(spans, HEALTH_CHECK).attributes["rpc.grpc.status_code"] == 0  # type: ignore[index]
    assert counts.added() == (1, 0, 1)

    # Above DEBUG the probe leaves no record, and is still counted; a failing probe
    # still fails with its own code.
    access_log.clear()
    access_log.set_level(logging.INFO, logger="micro.grpc")
    counts = Counts(HEALTH_CHECK, "OK")
    await health.Check(health_pb2.HealthCheckRequest(service=""))
    await recorded(spans, HEALTH_CHECK, calls=2)
    assert counts.added() == (1, 0, 1)
    counts = Counts(HEALTH_CHECK, "NOT_FOUND")
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert unknown.value.code() is grpc.StatusCode.NOT_FOUND
    await recorded(spans, HEALTH_CHECK, calls=3)
    assert counts.added() == (1, 1, 1)
    assert not [r for r in access_log.records if r.name == "micro.grpc"]


class QuietEcho(EchoServicer):
    quiet_methods = ("Echo",)

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        return echo_pb2.EchoResponse(text=request.text)


async def test_a_servicers_quiet_methods_log_at_debug_and_are_counted(
    start_grpc: Any,
    grpc_channel_to: OpenChannel,
    spans: InMemorySpanExporter,
    access_log: pytest.LogCaptureFixture,
) -> None:
    quiet = await start_grpc(QuietEcho())
    loud = await start_grpc()
    counts = Counts(ECHO, "OK")
    await echo_pb2_grpc.EchoServiceStub(grpc_channel_to(quiet)).Echo(echo_pb2.EchoRequest())
    await recorded(spans, ECHO)
    assert access_record(access_log, ECHO).levelno == logging.DEBUG
    assert counts.added() == (1, 0, 1)
    access_log.clear()
    await echo_pb2_grpc.EchoServiceStub(grpc_channel_to(loud)).Echo(echo_pb2.EchoRequest())
    await recorded(spans, ECHO, calls=2)
    assert access_record(access_log, ECHO).levelno == logging.INFO


def hs256_policy(prefix: str) -> AccessPolicy:
    key = {"kty": "oct", "kid": "h1", "alg": "HS256", "k": base64.urlsafe_b64encode(SECRET)}

    async def jwks() -> list[dict[str, Any]]:
        return [{**key, "k": key["k"].decode().rstrip("=")}]  # type: ignore[attr-defined]

    policy = AccessPolicy()
    policy.protect(prefix)
    policy.verifier = JwtVerifier(jwks, algorithms=["HS256"], issuer="go-micro.token-srv")
    return policy


async def test_authenticated_call_names_its_user_on_the_span(
    start_grpc: Any,
    grpc_channel_to: OpenChannel,
    spans: InMemorySpanExporter,
    access_log: pytest.LogCaptureFixture,
) -> None:
    server = await start_grpc(policy=hs256_policy("echo.v1.EchoService"))
    stub = echo_pb2_grpc.EchoServiceStub(grpc_channel_to(server))
    now = int(time.time())
    claims = {"sub": "thangn", "uid": "7", "iss": "go-micro.token-srv", "iat": now, "exp": now + 60}
    token = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "h1"})
    answer = await stub.Echo(
        echo_pb2.EchoRequest(text="whoami"), metadata=(("authorization", f"Bearer {token}"),)
    )
    assert answer.text == "thangn"
    await recorded(spans, ECHO)
    assert server_span(spans, ECHO).attributes["enduser.id"] == "7"  # type: ignore[index]

    spans.clear()
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.Echo(echo_pb2.EchoRequest(text="whoami"))
    assert anonymous.value.code() is grpc.StatusCode.UNAUTHENTICATED
    await recorded(spans, ECHO)
    span = server_span(spans, ECHO)
    assert "enduser.id" not in (span.attributes or {})
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]  # type: ignore[index]


class Stalling(EchoServicer):
    """Echo waits until cancelled; `started` is set once it runs."""

    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def Echo(self, request: echo_pb2.EchoRequest, context: Any) -> echo_pb2.EchoResponse:
        self.started.set()
        await asyncio.sleep(60)
        return echo_pb2.EchoResponse(text=request.text)


async def test_a_call_the_client_cancels_is_recorded_as_cancelled(
    start_grpc: Any,
    grpc_channel_to: OpenChannel,
    spans: InMemorySpanExporter,
    access_log: pytest.LogCaptureFixture,
) -> None:
    servicer = Stalling()
    server = await start_grpc(servicer, deadline=timedelta(seconds=30))
    counts = Counts(ECHO, "CANCELLED")
    call = echo_pb2_grpc.EchoServiceStub(grpc_channel_to(server)).Echo(
        echo_pb2.EchoRequest(text="x")
    )
    await asyncio.wait_for(servicer.started.wait(), timeout=10)
    call.cancel()
    # The span ends last, after the metrics and the access line.
    await eventually(lambda: bool(spans.get_finished_spans()), "the cancelled call's span")
    assert server_span(spans, ECHO).attributes["rpc.grpc.status_code"] == 1  # type: ignore[index]
    assert counts.added() == (1, 1, 1)
    assert access_record(access_log, ECHO).getMessage() == f"[gRPC] {ECHO} CANCELLED"
