"""The cost of micro's gRPC server interceptor chain on a trivial unary call, on loopback.

One server process (on uvloop, as a service runs) serves the same DevSvc.Get handler,
answering from memory, twice:
  bare   a grpc.aio.server with no interceptors;
  micro  micro.transport.grpc.GrpcServer, built as device-srv builds it: the
         LayeredInterceptor(server_layers(...)) chain of tracing (the SDK provider of
         setup_tracing, every call sampled, no exporter), access log + metrics (text
         lines at INFO, written to /dev/null), recovery, the 1 s deadline and auth with
         device-srv's policy (every method public, so no token).
This process calls both in alternating pairs (bare, micro / micro, bare, ...), each
sample a fixed count of calls on one channel per server, so every pair sees the same
background load:
  1. sequential, one call in flight: calls/s ratio micro/bare, and the chain's overhead
     in µs per call (median over the pairs of micro's time per call minus bare's);
  2. concurrent, a bounded number of calls in flight: calls/s ratio micro/bare.

Merges grpc_server_chain_ratio, grpc_server_chain_overhead_us, grpc_server_bare_call_us,
grpc_server_micro_call_us and grpc_server_chain_concurrent_ratio into bench/results.json.

    uv run python bench/bench_grpc_server.py [--rounds 15] [--calls 500] [--max-seconds 60]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import grpc

from api.device_srv.v1 import device_pb2_grpc
from micro.auth import AccessPolicy
from micro.config.model import GrpcServerConfig
from micro.health import Health
from micro.transport.grpc import GrpcServer

# bench/ scripts run with bench/ on sys.path; the root makes bench.results importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.grpc_pairs import (
    Call,
    Devices,
    alternating_pairs,
    answer_until_stdin_closes,
    bench_arguments,
    checked_get,
    concurrent_rate,
    observe_like_a_service,
    sequential_rate,
    serve_on_uvloop,
    server_process,
)
from bench.results import merge_results

IN_FLIGHT = 16
WARM_UP_CALLS = 200


# the server process -------------------------------------------------------------------


async def serve(log_sink: TextIO) -> None:
    """Start both servers on 127.0.0.1:0, print "<bare port> <micro port>", serve until
    stdin closes."""
    observe_like_a_service(log_sink)
    devices = Devices()
    bare = grpc.aio.server()
    device_pb2_grpc.add_DevSvcServicer_to_server(devices, bare)
    bare_port = bare.add_insecure_port("127.0.0.1:0")
    await bare.start()
    # device-srv's server.grpc (timeout 1s) and its policy, which protects nothing.
    micro = GrpcServer(GrpcServerConfig(addr="127.0.0.1:0"), health=Health(), policy=AccessPolicy())
    micro.add_service(device_pb2_grpc.add_DevSvcServicer_to_server, devices)
    micro_port = await micro.start()
    print(bare_port, micro_port, flush=True)
    try:
        await answer_until_stdin_closes()
    finally:
        await micro.stop(0)
        await bare.stop(0)


# measurements -------------------------------------------------------------------------


async def measure(
    bare_port: int, micro_port: int, rounds: int, calls: int, max_seconds: float
) -> dict[str, list[dict[str, float]]]:
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{bare_port}") as bare_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{micro_port}") as micro_channel,
    ):
        gets: dict[str, Call] = {
            "bare": await checked_get(bare_channel, WARM_UP_CALLS),
            "micro": await checked_get(micro_channel, WARM_UP_CALLS),
        }
        started = time.monotonic()
        # Half the time budget each, so the concurrent variant always gets its pairs.
        sequential = await alternating_pairs(
            sequential_rate, gets, rounds, calls, started + max_seconds / 2
        )
        concurrent = await alternating_pairs(
            concurrent_rate(IN_FLIGHT), gets, rounds, calls, started + max_seconds
        )
    return {"sequential": sequential, "concurrent": concurrent}


def run_with_server(rounds: int, calls: int, max_seconds: float) -> dict[str, Any]:
    with server_process(__file__) as (bare_port, micro_port):
        return asyncio.run(measure(bare_port, micro_port, rounds, calls, max_seconds))


def summarize(figures: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    sequential, concurrent = figures["sequential"], figures["concurrent"]
    bare_us = [1e6 / pair["bare"] for pair in sequential]
    micro_us = [1e6 / pair["micro"] for pair in sequential]
    return {
        "grpc_server_chain_ratio": round(
            statistics.median(p["micro"] / p["bare"] for p in sequential), 3
        ),
        "grpc_server_chain_overhead_us": round(
            statistics.median(m - b for m, b in zip(micro_us, bare_us, strict=True)), 1
        ),
        "grpc_server_bare_call_us": round(statistics.median(bare_us), 1),
        "grpc_server_micro_call_us": round(statistics.median(micro_us), 1),
        "grpc_server_chain_concurrent_ratio": round(
            statistics.median(p["micro"] / p["bare"] for p in concurrent), 3
        ),
    }


def main() -> int:
    args = bench_arguments(
        __doc__, rounds=15, rounds_help="alternating pairs per variant", calls=500, max_seconds=60.0
    )
    if args.serve:
        serve_on_uvloop(serve)
        return 0
    figures = run_with_server(args.rounds, args.calls, args.max_seconds)
    summary = summarize(figures)
    sequential, concurrent = figures["sequential"], figures["concurrent"]
    print(f"DevSvc.Get on loopback, {args.calls} calls per sample, bare vs micro's chain:")
    print(
        f"  sequential, {len(sequential)} pairs: bare {summary['grpc_server_bare_call_us']:.0f}"
        f" µs/call, micro {summary['grpc_server_micro_call_us']:.0f} µs/call;"
        f" overhead {summary['grpc_server_chain_overhead_us']:.0f} µs/call,"
        f" calls/s ratio micro/bare {summary['grpc_server_chain_ratio']:.3f}"
    )
    print(
        f"  {IN_FLIGHT} in flight, {len(concurrent)} pairs: bare"
        f" {statistics.median(p['bare'] for p in concurrent):.0f}/s, micro"
        f" {statistics.median(p['micro'] for p in concurrent):.0f}/s,"
        f" calls/s ratio micro/bare {summary['grpc_server_chain_concurrent_ratio']:.3f}"
    )
    merge_results(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
