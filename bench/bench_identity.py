"""What verifying the caller's identity costs micro's gRPC server: calls/s on against off.

A devcluster API server (the bench's own, on loopback) is the service-account issuer: it
signs the caller's pod-bound token (a TokenRequest for the account `bench-caller`, bound
to its Pod, audience go-micro.device-srv) and serves the discovery document and the
JWKS the callee verifies it with. One server process (on uvloop, set up as
bench_grpc_server.py's) serves the same DevSvc.Get handler, answering from memory, on two
micro.transport.grpc.GrpcServer built alike (device-srv's server.grpc and policy):
  off  no identity layer, as with identity.mode off;
  on   the identity layer of identity.mode kubernetes: the token in `x-micro-identity`
       verified (once, then from the per-token cache), the caller's Pod alive (the Pod
       watch), the method allowed by an identity.allow rule.
This process calls both in alternating pairs (off, on / on, off, ...), each sample a fixed
count of calls on one channel per server, so every pair sees the same background load:
sequential (one call in flight) and with a bounded number of calls in flight.

Merges identity_overhead_ratio (calls/s on/off, sequential, median over the pairs; the
goal is >= 0.90) and identity_concurrent_ratio into bench/results.json.

    uv run python bench/bench_identity.py [--rounds 15] [--calls 500] [--max-seconds 60]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import grpc
import kubernetes.client

from api.device_srv.v1 import device_pb2, device_pb2_grpc
from devcluster.testing import RunningDevCluster, body, running_devcluster
from micro.auth import AccessPolicy
from micro.config.model import GrpcServerConfig, IdentityConfig, IdentityRule
from micro.health import Health
from micro.identity import IDENTITY_METADATA_KEY
from micro.identity.factory import identity_guard
from micro.transport.grpc import GrpcServer

# bench/ scripts run with bench/ on sys.path; the root makes bench.results importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.grpc_pairs import (
    CALL_TIMEOUT_S,
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
NAMESPACE = "bench"
CALLER = "bench-caller"
AUDIENCE = "go-micro.device-srv"
RULE = IdentityRule(callers=(CALLER,), methods=("device_srv.v1.DevSvc/Get",))
# How the --serve process reaches the bench's API server (the parent's environment).
API_URL, API_CA, API_TOKEN = "BENCH_API_URL", "BENCH_API_CA", "BENCH_API_TOKEN"


# the issuer: the bench's own API server -------------------------------------------------


def caller_token(cluster: RunningDevCluster) -> str:
    """The caller's ServiceAccount and Pod, and a token bound to that Pod for AUDIENCE."""
    with cluster.api_client() as admin:
        core: Any = kubernetes.client.CoreV1Api(admin)  # models are Optional everywhere
        core.create_namespace(body({"metadata": {"name": NAMESPACE}}))
        core.create_namespaced_service_account(NAMESPACE, body({"metadata": {"name": CALLER}}))
        pod = core.create_namespaced_pod(
            NAMESPACE,
            body(
                {
                    "metadata": {"name": f"{CALLER}-0"},
                    "spec": {
                        "serviceAccountName": CALLER,
                        "containers": [{"name": CALLER, "image": "devexps/bench:1"}],
                    },
                }
            ),
        )
        reference = {"kind": "Pod", "apiVersion": "v1", "name": pod.metadata.name}
        request = {"spec": {"audiences": [AUDIENCE], "boundObjectRef": reference}}
        answer = core.create_namespaced_service_account_token(CALLER, NAMESPACE, body(request))
        token: str = answer.status.token
        return token


def api_client() -> kubernetes.client.ApiClient:
    configuration = kubernetes.client.Configuration()
    configuration.host = os.environ[API_URL]
    configuration.ssl_ca_cert = os.environ[API_CA]
    configuration.verify_ssl = True
    configuration.api_key = {"authorization": os.environ[API_TOKEN]}
    configuration.api_key_prefix = {"authorization": "Bearer"}
    return kubernetes.client.ApiClient(configuration)


# the server process -------------------------------------------------------------------


async def serve(log_sink: TextIO) -> None:
    """Start both servers on 127.0.0.1:0, print "<off port> <on port>", serve until stdin
    closes."""
    observe_like_a_service(log_sink)
    devices = Devices()
    config = GrpcServerConfig(addr="127.0.0.1:0")
    off = GrpcServer(config, health=Health(), policy=AccessPolicy())
    off.add_service(device_pb2_grpc.add_DevSvcServicer_to_server, devices)
    with api_client() as api:
        guard = identity_guard(
            IdentityConfig(mode="kubernetes"),
            api=api,
            audience=AUDIENCE,
            namespace=NAMESPACE,
            rules=lambda: (RULE,),
        )
        await guard.start()
        on = GrpcServer(config, health=Health(), policy=AccessPolicy(), identity=guard)
        on.add_service(device_pb2_grpc.add_DevSvcServicer_to_server, devices)
        ports = (await off.start(), await on.start())
        print(*ports, flush=True)
        try:
            await answer_until_stdin_closes()
        finally:
            await on.stop(0)
            await off.stop(0)
            await guard.stop()


# measurements -------------------------------------------------------------------------


async def refused_without_identity(channel: grpc.aio.Channel) -> None:
    """The "on" server really asks: a call with no token is UNAUTHENTICATED."""
    stub = device_pb2_grpc.DevSvcStub(channel)
    try:
        await stub.Get(device_pb2.DeviceName(name="device1"), timeout=CALL_TIMEOUT_S)
    except grpc.aio.AioRpcError as error:
        if error.code() == grpc.StatusCode.UNAUTHENTICATED:
            return
        raise
    raise RuntimeError("the identity server answered a call that carried no identity")


async def measure(
    ports: list[int], token: str, rounds: int, calls: int, max_seconds: float
) -> dict[str, list[dict[str, float]]]:
    off_port, on_port = ports
    async with (
        grpc.aio.insecure_channel(f"127.0.0.1:{off_port}") as off_channel,
        grpc.aio.insecure_channel(f"127.0.0.1:{on_port}") as on_channel,
    ):
        await refused_without_identity(on_channel)
        gets: dict[str, Call] = {
            "off": await checked_get(off_channel, WARM_UP_CALLS),
            "on": await checked_get(
                on_channel, WARM_UP_CALLS, metadata=((IDENTITY_METADATA_KEY, token),)
            ),
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


def run(rounds: int, calls: int, max_seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as state, running_devcluster(Path(state)) as cluster:
        token = caller_token(cluster)
        env = {
            API_URL: cluster.url,
            API_CA: str(cluster.ca_file),
            API_TOKEN: cluster.admin_token,
        }
        with server_process(__file__, env=env) as ports:
            return asyncio.run(measure(ports, token, rounds, calls, max_seconds))


def summarize(figures: dict[str, list[dict[str, float]]]) -> dict[str, float]:
    def ratio(pairs: list[dict[str, float]]) -> float:
        return round(statistics.median(p["on"] / p["off"] for p in pairs), 3)

    return {
        "identity_overhead_ratio": ratio(figures["sequential"]),
        "identity_concurrent_ratio": ratio(figures["concurrent"]),
    }


def main() -> int:
    args = bench_arguments(
        __doc__, rounds=15, rounds_help="alternating pairs per variant", calls=500, max_seconds=60.0
    )
    if args.serve:
        serve_on_uvloop(serve)
        return 0
    figures = run(args.rounds, args.calls, args.max_seconds)
    summary = summarize(figures)
    sequential, concurrent = figures["sequential"], figures["concurrent"]
    print(f"DevSvc.Get on loopback, {args.calls} calls per sample, identity off vs on:")
    print(
        f"  sequential, {len(sequential)} pairs: off"
        f" {statistics.median(p['off'] for p in sequential):.0f}/s, on"
        f" {statistics.median(p['on'] for p in sequential):.0f}/s,"
        f" calls/s ratio on/off {summary['identity_overhead_ratio']:.3f} (goal >= 0.90)"
    )
    print(
        f"  {IN_FLIGHT} in flight, {len(concurrent)} pairs: off"
        f" {statistics.median(p['off'] for p in concurrent):.0f}/s, on"
        f" {statistics.median(p['on'] for p in concurrent):.0f}/s,"
        f" calls/s ratio on/off {summary['identity_concurrent_ratio']:.3f}"
    )
    merge_results(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
