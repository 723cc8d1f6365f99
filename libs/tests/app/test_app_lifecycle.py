"""micro.app: health through start and shutdown, SIGTERM with calls in flight, and
start-up failures, with the service as its own process (libs/tests/app/runtime_service.py)
and in-process."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.trace import SpanProcessor

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.app import App, ServiceContext, freeze_startup_heap
from micro.config.model import ServiceConfig, TracingConfig
from micro.testing.apps import IDENTITY_OFF
from micro.tracing import setup_tracing

SERVICE = Path(__file__).with_name("runtime_service.py")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
LISTENING = re.compile(r"\[(gRPC|HTTP)\] server listening on: 127\.0\.0\.1:(\d+)")


def service_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MICRO")}
    env.update(
        {
            "POD_NAME": "test-srv-0",
            "MICRO__REGISTRY__TYPE": "static",
            "MICRO__SERVER__GRPC__ADDR": "127.0.0.1:0",
            "MICRO__SERVER__GRPC__TIMEOUT": "20s",
            "MICRO__SERVER__HTTP__ADDR": "127.0.0.1:0",
            "MICRO__SERVER__HTTP__TIMEOUT": "20s",
            "MICRO__SERVER__ADMIN__ADDR": "127.0.0.1:0",
            "MICRO__SHUTDOWN__DRAIN_DELAY": "1s",
            "MICRO__SHUTDOWN__GRACE_PERIOD": "15s",
            **IDENTITY_OFF,
        }
    )
    env.update(extra)
    return env


def in_process_env(*, shutdown: str) -> dict[str, str]:
    """An App run inside the test: loopback gRPC, HTTP and admin ports, a static registry,
    and `shutdown` as both the drain delay and the grace period."""
    return {
        "MICRO__REGISTRY__TYPE": "static",
        "MICRO__SERVER__GRPC__ADDR": "127.0.0.1:0",
        "MICRO__SERVER__HTTP__ADDR": "127.0.0.1:0",
        "MICRO__SERVER__ADMIN__ADDR": "127.0.0.1:0",
        "MICRO__SHUTDOWN__DRAIN_DELAY": shutdown,
        "MICRO__SHUTDOWN__GRACE_PERIOD": shutdown,
        **IDENTITY_OFF,
    }


class ServiceProcess:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.ports: dict[str, int] = {}
        self._started = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if match := LISTENING.search(line):
                self.ports[match[1]] = int(match[2])
            if "msg=go-micro.test-srv test started" in line:
                self._started.set()

    async def started(self) -> None:
        waiter = asyncio.create_task(self._started.wait())
        exited = asyncio.create_task(self.process.wait())
        done, _ = await asyncio.wait({waiter, exited}, timeout=30, return_when="FIRST_COMPLETED")
        waiter.cancel()
        exited.cancel()
        assert waiter in done, "the service did not start:\n" + "\n".join(self.lines)

    async def exit_code(self) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout=30)
        await self._reader
        return code


@pytest.fixture
async def spawn() -> AsyncIterator[Any]:
    processes: list[ServiceProcess] = []

    async def start(**env: str) -> ServiceProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SERVICE),
            env=service_env(**env),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        processes.append(ServiceProcess(process))
        return processes[-1]

    yield start
    for service in processes:
        if service.process.returncode is None:
            service.process.kill()
            await service.process.wait()


async def health_of(port: int, service: str = "") -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        return int(response.status)


async def eventually(check: Any, attempts: int = 200) -> None:
    """Poll an async predicate, bounded in count (50 ms apart)."""
    for _ in range(attempts):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{check.__name__} never held")


async def test_sigterm_with_calls_in_flight_loses_none(spawn: Any) -> None:
    service = await spawn()
    await service.started()
    grpc_port, http_port = service.ports["gRPC"], service.ports["HTTP"]
    base = f"http://127.0.0.1:{http_port}"
    assert await health_of(grpc_port) == SERVING
    assert await health_of(grpc_port, "echo.v1.EchoService") == SERVING

    async with (
        httpx.AsyncClient(timeout=30) as http,
        grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel,
    ):
        assert (await http.get(f"{base}/readyz")).status_code == 200
        stub = echo_pb2_grpc.EchoServiceStub(channel)

        async def slow_get() -> echo_pb2.EchoResponse:
            return await stub.Echo(echo_pb2.EchoRequest(text="sleep:2"), timeout=30)

        grpc_calls = [asyncio.create_task(slow_get()) for _ in range(8)]
        http_calls = [asyncio.create_task(http.get(f"{base}/slow/2")) for _ in range(8)]

        async def all_arrived() -> bool:
            return bool((await http.get(f"{base}/inflight")).json()["count"] == 16)

        await eventually(all_arrived)
        service.process.send_signal(signal.SIGTERM)

        async def not_ready() -> bool:
            return (await http.get(f"{base}/readyz")).status_code == 503

        await eventually(not_ready)  # while draining, the servers still answer probes
        assert await health_of(grpc_port) == NOT_SERVING
        assert await health_of(grpc_port, "echo.v1.EchoService") == NOT_SERVING

        answers = await asyncio.gather(*grpc_calls)
        responses = await asyncio.gather(*http_calls)
    assert [a.text for a in answers] == ["sleep:2"] * 8
    assert [r.status_code for r in responses] == [200] * 8
    assert await service.exit_code() == 0
    log = "\n".join(service.lines)
    assert "msg=shutdown hook ran" in log
    assert "msg=go-micro.test-srv stopped" in log
    with pytest.raises(ConnectionRefusedError):  # nothing listens any more
        socket.create_connection(("127.0.0.1", http_port), timeout=2).close()


async def test_invalid_config_is_one_line_and_exit_1(spawn: Any) -> None:
    service = await spawn(MICRO__SERVER__GRPC__TIMEOUT="soon")
    assert await service.exit_code() == 1
    errors = [line for line in service.lines if line.startswith("ERROR")]
    assert len(errors) == 1, service.lines
    assert "start-up failed" in errors[0]
    assert "server.grpc.timeout" in errors[0]


async def test_port_in_use_is_one_line_and_exit_1(spawn: Any) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        service = await spawn(MICRO__SERVER__HTTP__ADDR=f"127.0.0.1:{port}")
        assert await service.exit_code() == 1
    errors = [line for line in service.lines if line.startswith("ERROR")]
    assert len(errors) == 1, service.lines
    assert f"cannot listen on 127.0.0.1:{port}" in errors[0]


async def test_health_through_start_and_shutdown_in_process(restore_logging: Any) -> None:
    seen: dict[str, Any] = {}

    async def compose(ctx: ServiceContext[ServiceConfig]) -> None:
        async def before_registration() -> None:
            # The servers listen, but the service is not ready yet.
            assert ctx.grpc_port is not None
            seen["starting"] = await health_of(ctx.grpc_port)
            async with httpx.AsyncClient() as http:
                ready = await http.get(f"http://127.0.0.1:{ctx.http_port}/readyz")
            seen["starting_readyz"] = ready.status_code

        ctx.on_startup(before_registration)

    env = in_process_env(shutdown="1s")
    app = App("go-micro.test-srv", ServiceConfig, compose, version="test", env=env)
    await app.start()
    assert app.ctx is not None
    grpc_port, http_port = app.ctx.grpc_port, app.ctx.http_port
    assert grpc_port
    assert http_port
    assert seen == {"starting": NOT_SERVING, "starting_readyz": 503}
    assert await health_of(grpc_port) == SERVING
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://127.0.0.1:{http_port}/readyz")).status_code == 200
        stopping = asyncio.create_task(app.shutdown())

        async def draining() -> bool:
            ready = await http.get(f"http://127.0.0.1:{http_port}/readyz")
            return ready.status_code == 503

        await eventually(draining)
        assert await health_of(grpc_port) == NOT_SERVING
        await stopping
    with pytest.raises(grpc.aio.AioRpcError) as gone:
        await health_of(grpc_port)
    assert gone.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_grpc_only_service_serves_probes_and_metrics_on_the_admin_port(
    restore_logging: Any,
) -> None:
    async def compose(ctx: ServiceContext[ServiceConfig]) -> None:
        return None

    env = {
        "MICRO__REGISTRY__TYPE": "static",
        "MICRO__SERVER__GRPC__ADDR": "127.0.0.1:0",
        "MICRO__SERVER__ADMIN__ADDR": "127.0.0.1:0",
        "MICRO__SHUTDOWN__DRAIN_DELAY": "0s",
        **IDENTITY_OFF,
    }
    app = App("go-micro.test-srv", ServiceConfig, compose, version="test", env=env)
    await app.start()
    try:
        assert app.ctx is not None
        assert app.ctx.http_port is None
        assert app.ctx.grpc_port is not None
        assert app.ctx.ports["admin"] == app.ctx.admin_port
        assert app.ctx.admin_port is not None
        assert await health_of(app.ctx.grpc_port) == SERVING
        async with httpx.AsyncClient() as http:
            base = f"http://127.0.0.1:{app.ctx.admin_port}"
            ready = await http.get(f"{base}/readyz")
            assert (ready.status_code, ready.json()) == (
                200,
                {"status": "ready", "phase": "serving"},
            )
            scrape = (await http.get(f"{base}/metrics")).text
        counted = (
            'micro_server_requests_total{code="OK",'
            'method="/grpc.health.v1.Health/Check",transport="grpc"}'
        )
        assert counted in scrape
        # Discovery routes to the public ports only.
        assert app._instance is not None
        assert app._instance.endpoints == (f"grpc://127.0.0.1:{app.ctx.grpc_port}",)
    finally:
        await app.shutdown()


class FlushCounter(SpanProcessor):
    """Counts the flushes of the process's tracer provider."""

    def __init__(self) -> None:
        self.flushes = 0

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flushes += 1
        return True


def broken(step: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """The step, done for real, then failing as a part whose stop goes wrong would."""

    async def run_then_fail(*args: Any) -> None:
        await step(*args)
        raise RuntimeError(f"{step.__qualname__} broke")

    return run_then_fail


async def test_a_failing_shutdown_step_does_not_skip_the_later_ones(
    restore_logging: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    hooks_ran: list[str] = []

    async def compose(ctx: ServiceContext[ServiceConfig]) -> None:
        async def dispose_engine() -> None:
            hooks_ran.append("dispose_engine")

        ctx.on_shutdown(dispose_engine)

    env = in_process_env(shutdown="0s")
    app = App("go-micro.test-srv", ServiceConfig, compose, version="test", env=env)
    await app.start()
    assert app.ctx is not None
    http_port = app.ctx.http_port
    assert http_port
    # The parts the release steps through, each failing after doing its work.
    grpc_server = app.server("grpc")
    assert grpc_server is not None
    assert app._discovery is not None
    assert app._handle is not None
    monkeypatch.setattr(grpc_server, "stop", broken(grpc_server.stop))
    monkeypatch.setattr(app._discovery, "close", broken(app._discovery.close))
    monkeypatch.setattr(app._handle, "stop", broken(app._handle.stop))
    flush = FlushCounter()
    provider = setup_tracing(
        TracingConfig(), service_name="go-micro.test-srv", service_version="t", instance_id="t"
    )
    provider.add_span_processor(flush)

    with caplog.at_level(logging.ERROR, logger="micro.app"):
        await app.shutdown()

    failures = [
        r.getMessage()
        for r in caplog.records
        if r.name == "micro.app" and r.levelno == logging.ERROR
    ]
    assert failures == [
        "shutdown step failed: stopping the gRPC server",
        "shutdown step failed: closing discovery",
        "shutdown step failed: stopping the config watch",
    ]
    assert hooks_ran == ["dispose_engine"]  # after the gRPC server's failed stop
    assert flush.flushes == 1  # after the config watch's failed stop
    with pytest.raises(ConnectionRefusedError):  # the HTTP server stopped beside it
        socket.create_connection(("127.0.0.1", http_port), timeout=2).close()


def test_what_start_up_built_is_frozen_out_of_the_collector() -> None:
    built = [{"start-up": n} for n in range(1000)]
    before = gc.get_freeze_count()
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() >= before + len(built)
        assert gc.get_count()[0] < 100  # the young generation starts afresh
    finally:
        gc.unfreeze()


def test_a_grpc_only_service_never_loads_the_http_stack() -> None:
    """micro.app loads FastAPI, Starlette and uvicorn only to build an HTTP server."""
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, micro.app;"
            " print(sorted(m for m in ('fastapi', 'starlette', 'uvicorn') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert loaded.stdout.strip() == "[]", loaded.stdout
