"""What each layer of micro's gRPC server chain costs: the server's CPU time per call.

One server process (on uvloop, set up as bench_grpc_server.py's: text access lines at
INFO written to /dev/null, the SDK tracer sampling every call with no exporter) serves
the same DevSvc.Get handler, answering from memory, on one grpc.aio server per variant:
  bare         no interceptors;
  interceptor  LayeredInterceptor with no layers: the per-call wrapper alone;
  tracing ...  LayeredInterceptor with the first 1, 2, ... 5 layers of server_layers()
               (device-srv's 1 s timeout and its policy, which protects nothing), so the
               last one is the whole chain as device-srv runs it;
  quiet        the whole chain again with log.level at WARNING, so no access line.
This process makes a fixed count of calls with 16 in flight on one channel per server,
one sample per variant and round in rotating order, so every variant sees the same
background load; around each sample it asks the server process for its CPU seconds
(time.process_time over a pipe: user + system, all its threads). Figures are medians over
the rounds of µs of server CPU per call; a layer's increment is the median of its
variant minus the one before it within each round.

Merges grpc_server_cpu_bare_us, grpc_server_cpu_chain_us, grpc_server_cpu_<variant>_us
per increment (interceptor, tracing, observe, recovery, deadline, auth) and
grpc_server_cpu_access_line_us (the whole chain minus quiet) into bench/results.json.

    uv run python bench/bench_grpc_layers.py [--rounds 20] [--calls 800] [--max-seconds 20]

A sample's figure moves with the machine's state, mostly alike for all the variants of a
round, so the paired increments are steadier; still, the default run (the one `make bench`
makes) leaves the smallest layers' increments close to the noise, and
`--rounds 80 --max-seconds 120` narrows that.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import sys
import time
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import TextIO

import grpc

from api.device_srv.v1 import device_pb2_grpc
from micro.auth import AccessPolicy
from micro.config.model import GrpcServerConfig
from micro.log import set_level
from micro.transport.grpc_interceptors import Layer, LayeredInterceptor, server_layers

# bench/ scripts run with bench/ on sys.path; the root makes bench.results importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.grpc_pairs import (
    Call,
    Devices,
    ServerProcess,
    answer_until_stdin_closes,
    bench_arguments,
    calls_in_flight,
    checked_get,
    observe_like_a_service,
    rotating_rounds,
    serve_on_uvloop,
    start_server_process,
)
from bench.results import merge_results

IN_FLIGHT = 16
WARM_UP_CALLS = 200
# Names for server_layers()'s layers, outermost first; zip(strict=True) fails the bench
# if the chain gains or loses a layer.
LAYER_NAMES = ("tracing", "observe", "recovery", "deadline", "auth")
QUIET = "quiet"


def chain() -> list[tuple[str, Layer]]:
    """device-srv's layers: server.grpc's default 1 s timeout and a policy that protects
    nothing."""
    timeout: timedelta = GrpcServerConfig().timeout
    layers = server_layers(timeout, AccessPolicy())
    return list(zip(LAYER_NAMES, layers, strict=True))


def server_variants() -> list[str]:
    """One server each, in the order of the ports the server process prints."""
    return ["bare", "interceptor", *(name for name, _ in chain())]


def log_level(variant: str) -> str:
    return "WARNING" if variant == QUIET else "INFO"


# the server process -------------------------------------------------------------------


async def serve(log_sink: TextIO) -> None:
    """Start one server per variant on 127.0.0.1:0, print their ports, then answer each
    line on stdin (a log level to set) with the process's CPU seconds until stdin closes."""
    observe_like_a_service(log_sink)
    devices = Devices()
    layers = [layer for _, layer in chain()]
    servers = [grpc.aio.server()] + [
        grpc.aio.server(interceptors=[LayeredInterceptor(layers[:count])])
        for count in range(len(layers) + 1)
    ]
    async with AsyncExitStack() as stack:
        ports = []
        for server in servers:
            device_pb2_grpc.add_DevSvcServicer_to_server(devices, server)
            ports.append(server.add_insecure_port("127.0.0.1:0"))
            await server.start()
            stack.push_async_callback(server.stop, 0)
        print(*ports, flush=True)
        await answer_until_stdin_closes(set_level)


# measurements -------------------------------------------------------------------------


async def measure(
    server: ServerProcess, rounds: int, calls: int, max_seconds: float
) -> list[dict[str, float]]:
    """µs of server CPU per call, per variant and round."""
    async with AsyncExitStack() as stack:
        gets: dict[str, Call] = {}
        for variant, port in zip(server_variants(), server.ports, strict=True):
            channel = await stack.enter_async_context(
                grpc.aio.insecure_channel(f"127.0.0.1:{port}")
            )
            gets[variant] = await checked_get(channel, WARM_UP_CALLS)
            await calls_in_flight(gets[variant], IN_FLIGHT, WARM_UP_CALLS)
        gets[QUIET] = gets[server_variants()[-1]]

        async def server_cpu_per_call_us(variant: str) -> float:
            before = server.cpu_seconds(log_level(variant))
            made = await calls_in_flight(gets[variant], IN_FLIGHT, calls)
            after = server.cpu_seconds(log_level(variant))
            return (after - before) / made * 1e6

        until = time.monotonic() + max_seconds
        return await rotating_rounds(server_cpu_per_call_us, list(gets), rounds, until)


def summarize(samples: list[dict[str, float]]) -> dict[str, float]:
    def median(variant: str) -> float:
        return round(statistics.median(sample[variant] for sample in samples), 1)

    def increment(variant: str, over: str) -> float:
        return round(statistics.median(s[variant] - s[over] for s in samples), 1)

    variants = server_variants()
    figures = {
        "grpc_server_cpu_bare_us": median("bare"),
        "grpc_server_cpu_chain_us": median(variants[-1]),
    }
    for over, variant in itertools.pairwise(variants):
        figures[f"grpc_server_cpu_{variant}_us"] = increment(variant, over)
    figures["grpc_server_cpu_access_line_us"] = increment(variants[-1], QUIET)
    return figures


def report(samples: list[dict[str, float]], calls: int) -> None:
    variants = server_variants()
    print(
        f"DevSvc.Get on loopback, {IN_FLIGHT} in flight, about {calls} calls per sample,"
        f" {len(samples)} rounds: server CPU per call (medians)"
    )
    print(f"  {'variant':<12} {'µs/call':>8} {'over bare':>10} {'over previous':>14}")
    previous = None
    for variant in [*variants, QUIET]:
        per_call = statistics.median(s[variant] for s in samples)
        over_bare = statistics.median(s[variant] - s["bare"] for s in samples)
        step = (
            ""
            if previous is None
            else f"{statistics.median(s[variant] - s[previous] for s in samples):+.1f}"
        )
        print(f"  {variant:<12} {per_call:>8.1f} {over_bare:>+10.1f} {step:>14}")
        previous = variant
    print("  quiet is the whole chain at log.level WARNING: over previous, minus the access line")


def main() -> int:
    args = bench_arguments(
        __doc__, rounds=20, rounds_help="samples per variant", calls=800, max_seconds=20.0
    )
    if args.serve:
        serve_on_uvloop(serve)
        return 0
    with start_server_process(__file__) as server:
        samples = asyncio.run(measure(server, args.rounds, args.calls, args.max_seconds))
    report(samples, args.calls)
    merge_results(summarize(samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())
