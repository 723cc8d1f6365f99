"""What the gRPC benchmarks share: the DevSvc server they call, run in a process of its
own set up as a service sets itself up, and samples taken in rotating order (for two
kinds, alternating pairs) so that every kind sees the same background load."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

import grpc
import uvloop

from api.device_srv.v1 import device_pb2, device_pb2_grpc
from micro.config.model import TracingConfig
from micro.log import configure_logging
from micro.tracing import setup_tracing

Call = Callable[[], Awaitable[Any]]
Rate = Callable[[Call, int], Awaitable[float]]

SERVICE = "go-micro.device-srv"
CALL_TIMEOUT_S = 5.0


class Devices(device_pb2_grpc.DevSvcServicer):
    """DevSvc answering from memory: every device is active."""

    async def Get(self, request: device_pb2.DeviceName, context: Any) -> device_pb2.Device:
        return device_pb2.Device(name=request.name, active=True)

    async def List(
        self, request: device_pb2.ListDevicesRequest, context: Any
    ) -> device_pb2.ListDevicesResponse:
        return device_pb2.ListDevicesResponse()


def observe_like_a_service(log_sink: TextIO) -> None:
    """What App.start sets up before its servers: the log handler (text lines at INFO,
    written to `log_sink`) and the tracer (the SDK provider, every call sampled, no
    exporter)."""
    configure_logging(
        service_id="bench", service_name=SERVICE, service_version="bench", stream=log_sink
    )
    setup_tracing(
        TracingConfig(), service_name=SERVICE, service_version="bench", instance_id="bench"
    )


def bench_arguments(
    doc: str | None, *, rounds: int, rounds_help: str, calls: int, max_seconds: float
) -> argparse.Namespace:
    """The command line every gRPC benchmark takes (with a hidden --serve for its server
    process), each count checked to be positive."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=rounds, help=rounds_help)
    parser.add_argument("--calls", type=int, default=calls, help="calls per sample")
    parser.add_argument("--max-seconds", type=float, default=max_seconds)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rounds < 1 or args.calls < 1 or args.max_seconds <= 0:
        parser.error("--rounds, --calls and --max-seconds must be positive")
    return args


def serve_on_uvloop(serve: Callable[[TextIO], Coroutine[Any, Any, None]]) -> None:
    """Run a --serve process's `serve` on uvloop, as a service runs, with its access log
    lines formatted and written as in a pod, then dropped."""
    with (
        open(os.devnull, "w") as log_sink,
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        runner.run(serve(log_sink))


async def answer_until_stdin_closes(on_request: Callable[[str], None] | None = None) -> None:
    """The `--serve` side of ServerProcess: answer each line on stdin with this process's
    CPU seconds so far, after handing the line to `on_request`; return when stdin closes."""
    while line := await asyncio.to_thread(sys.stdin.readline):
        if on_request is not None:
            on_request(line.strip())
        print(time.process_time(), flush=True)


class ServerProcess:
    """A running `script --serve`: the ports it printed first, and its CPU time on request."""

    def __init__(self, process: subprocess.Popen[str], ports: list[int]) -> None:
        self._process = process
        self.ports = ports

    def cpu_seconds(self, request: str = "") -> float:
        """The server's user + system CPU seconds (all its threads) once it has read
        `request` (one line, handed to its `on_request`)."""
        assert self._process.stdin is not None
        assert self._process.stdout is not None
        self._process.stdin.write(request + "\n")
        self._process.stdin.flush()
        answer = self._process.stdout.readline()
        if not answer:
            raise RuntimeError("the server process exited instead of answering its CPU time")
        return float(answer)


@contextmanager
def start_server_process(script: str, env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """Run `script --serve` in its own process, so that its servers do not share the
    caller's event loop (nor its CPU time), with `env` added to its environment; closing
    its stdin tells it to stop."""
    server = subprocess.Popen(
        [sys.executable, script, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line:
            raise RuntimeError(f"{script} --serve exited before printing its ports")
        yield ServerProcess(server, [int(port) for port in line.split()])
    finally:
        if server.stdin is not None:
            server.stdin.close()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        if server.stdout is not None:
            server.stdout.close()


@contextmanager
def server_process(script: str, env: dict[str, str] | None = None) -> Iterator[list[int]]:
    """start_server_process, for a caller that needs only the ports."""
    with start_server_process(script, env) as server:
        yield server.ports


async def checked_get(
    channel: grpc.aio.Channel,
    warm_up_calls: int,
    metadata: tuple[tuple[str, str], ...] = (),
) -> Call:
    """DevSvc.Get("device1") on `channel` with `metadata`, once its answer is checked and
    the channel warmed up with `warm_up_calls` calls."""
    stub = device_pb2_grpc.DevSvcStub(channel)
    request = device_pb2.DeviceName(name="device1")

    def get() -> Awaitable[Any]:
        return stub.Get(request, timeout=CALL_TIMEOUT_S, metadata=metadata)

    answer = await get()
    if answer.name != "device1" or not answer.active:
        raise RuntimeError(f"DevSvc.Get answered {answer!r}")
    await sequential_rate(get, warm_up_calls)
    return get


async def sequential_rate(call: Call, calls: int) -> float:
    """calls/s with one call in flight."""
    started = time.perf_counter()
    for _ in range(calls):
        await call()
    return calls / (time.perf_counter() - started)


async def calls_in_flight(call: Call, in_flight: int, calls: int) -> int:
    """About `calls` calls by `in_flight` callers, each making its share in turn; answers
    how many were made (a multiple of `in_flight`)."""
    per_caller = max(1, calls // in_flight)

    async def caller() -> None:
        for _ in range(per_caller):
            await call()

    await asyncio.gather(*(caller() for _ in range(in_flight)))
    return per_caller * in_flight


def concurrent_rate(in_flight: int) -> Rate:
    """calls/s with `in_flight` callers."""

    async def rate(call: Call, calls: int) -> float:
        started = time.perf_counter()
        made = await calls_in_flight(call, in_flight, calls)
        return made / (time.perf_counter() - started)

    return rate


async def rotating_rounds(
    sample: Callable[[str], Awaitable[float]], kinds: Sequence[str], rounds: int, until: float
) -> list[dict[str, float]]:
    """One sample of each kind per round, round n starting at the n-th kind (so every kind
    takes every place in the order), until `rounds` rounds or the monotonic time `until`;
    at least one round."""
    results: list[dict[str, float]] = []
    for number in range(rounds):
        if results and time.monotonic() > until:
            break
        start = number % len(kinds)
        order = [*kinds[start:], *kinds[:start]]
        results.append({kind: await sample(kind) for kind in order})
    return results


async def alternating_pairs(
    rate: Rate, calls_by_kind: dict[str, Call], rounds: int, calls: int, until: float
) -> list[dict[str, float]]:
    """calls/s of each of two kinds per pair, measured in AB, BA, ... order, until
    `rounds` pairs or the monotonic time `until`; at least one pair."""
    if len(calls_by_kind) != 2:
        raise ValueError("alternating_pairs compares exactly two kinds")

    async def sample(kind: str) -> float:
        return await rate(calls_by_kind[kind], calls)

    return await rotating_rounds(sample, list(calls_by_kind), rounds, until)
