"""What the gRPC throughput benchmarks share: the DevSvc server they call, run in a process
of its own, and calls/s measured in alternating pairs so that each pair sees the same
background load."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from api.device_srv.v1 import device_pb2, device_pb2_grpc

Call = Callable[[], Awaitable[Any]]
Rate = Callable[[Call, int], Awaitable[float]]


class Devices(device_pb2_grpc.DevSvcServicer):
    """DevSvc answering from memory: every device is active."""

    async def Get(self, request: device_pb2.DeviceName, context: Any) -> device_pb2.Device:
        return device_pb2.Device(name=request.name, active=True)

    async def List(
        self, request: device_pb2.ListDevicesRequest, context: Any
    ) -> device_pb2.ListDevicesResponse:
        return device_pb2.ListDevicesResponse()


@contextmanager
def server_process(script: str) -> Iterator[list[int]]:
    """Run `script --serve` in its own process, so that its servers do not share the
    caller's event loop; yield the ports on the first line it prints. Closing its stdin
    tells it to stop."""
    server = subprocess.Popen(
        [sys.executable, script, "--serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line:
            raise RuntimeError(f"{script} --serve exited before printing its ports")
        yield [int(port) for port in line.split()]
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


async def sequential_rate(call: Call, calls: int) -> float:
    """calls/s with one call in flight."""
    started = time.perf_counter()
    for _ in range(calls):
        await call()
    return calls / (time.perf_counter() - started)


def concurrent_rate(in_flight: int) -> Rate:
    """calls/s with `in_flight` callers, each making its share of the calls in turn."""

    async def rate(call: Call, calls: int) -> float:
        per_caller = max(1, calls // in_flight)

        async def caller() -> None:
            for _ in range(per_caller):
                await call()

        started = time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(in_flight)))
        return per_caller * in_flight / (time.perf_counter() - started)

    return rate


async def alternating_pairs(
    rate: Rate, calls_by_kind: dict[str, Call], rounds: int, calls: int, until: float
) -> list[dict[str, float]]:
    """calls/s of each of two kinds per pair, measured in AB, BA, ... order, until
    `rounds` pairs or the monotonic time `until`; at least one pair."""
    first, second = calls_by_kind
    pairs: list[dict[str, float]] = []
    for number in range(rounds):
        if pairs and time.monotonic() > until:
            break
        order = (first, second) if number % 2 == 0 else (second, first)
        pairs.append({kind: await rate(calls_by_kind[kind], calls) for kind in order})
    return pairs
