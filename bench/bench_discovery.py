"""Discovery convergence and the balanced client's overhead, against the devcluster.

1. Ready -> routing: a Pod's status is patched to Running + Ready (as the kubelet does);
   timed until the client's instance pool routes to it.
2. deletionTimestamp -> removal: the Pod is deleted gracefully (it stays, with a
   deletionTimestamp); timed until the pool no longer routes to it.
3. Throughput of DevSvc.Get through the discovered, balanced stub against a raw
   grpc.aio channel to the same server (in its own process), alternating in one run;
   neither side carries interceptors, so the ratio is the cost of discovery + balancing.

Merges discovery_convergence_p99_ms, discovery_removal_p99_ms and
client_overhead_ratio (and p50s) into bench/results.json.

    uv run python bench/bench_discovery.py [--rounds 100] [--calls 1600] [--max-seconds 90]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import kubernetes.client

from api.device_srv.v1 import device_pb2, device_pb2_grpc
from devcluster.testing import running_devcluster
from micro.client import ClientFactory
from micro.config.model import GrpcClientConfig
from micro.kube import Backoff
from micro.registry import PodDiscovery, ServiceInstance
from micro.registry.names import short_name

# bench/ scripts run with bench/ on sys.path; the root makes bench.results importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.grpc_pairs import Devices, alternating_pairs, concurrent_rate, server_process
from bench.results import merge_results, percentile

NAMESPACE = "bench-discovery"
SERVICE = "go-micro.device-srv"
WAIT_S = 10.0
CONCURRENCY = 16
THROUGHPUT_ROUNDS = 12


# the server process -------------------------------------------------------------------


async def serve() -> None:
    """Run DevSvc on 127.0.0.1:0, print the port, serve until stdin closes."""
    server = grpc.aio.server()
    device_pb2_grpc.add_DevSvcServicer_to_server(Devices(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print(port, flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await server.stop(0)


# measurements -------------------------------------------------------------------------


def pod_body(name: str, ip: str, port: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {"gomicro-service-app": SERVICE, "gomicro-service-id": f"{name}.{SERVICE}"},
            "annotations": {"gomicro-service-protocols": json.dumps({str(port): "grpc"})},
        },
        "spec": {
            "serviceAccountName": short_name(SERVICE),  # discovery routes to no other account
            "nodeName": "devcluster",
            "containers": [{"name": "app", "image": "local/app"}],
        },
    }


def running_ready(ip: str) -> dict[str, Any]:
    return {
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True"}],
        }
    }


async def convergence(
    core: Any, discovery: PodDiscovery, factory: ClientFactory, rounds: int, until: float
) -> tuple[list[float], list[float]]:
    pool = factory.pool(SERVICE)
    await pool.ready()  # follows the service
    routed: dict[str, float] = {}
    removed: dict[str, float] = {}
    changed = asyncio.Event()

    def on_change(instances: list[ServiceInstance]) -> None:
        # Subscribed after the pool: when this runs, the pool has applied the change.
        now = time.perf_counter()
        targets = {e.target for e in pool.endpoints()}
        for target in targets:
            routed.setdefault(target, now)
        for target in list(routed):
            if target not in targets:
                removed.setdefault(target, now)
        changed.set()

    discovery.subscribe(SERVICE, on_change)
    ready_ms: list[float] = []
    removal_ms: list[float] = []
    for number in range(rounds):
        if time.monotonic() > until:
            break
        name, ip = f"bench-{number}", f"127.0.30.{number % 250 + 1}"
        target = f"{ip}:9090"
        routed.pop(target, None)
        removed.pop(target, None)
        await asyncio.to_thread(core.create_namespaced_pod, NAMESPACE, pod_body(name, ip, 9090))
        sent = time.perf_counter()
        await asyncio.to_thread(
            core.patch_namespaced_pod_status, name, NAMESPACE, running_ready(ip)
        )
        await wait_for(lambda t=target: t in routed, changed)  # type: ignore[misc]
        ready_ms.append((routed[target] - sent) * 1000)
        sent = time.perf_counter()
        await asyncio.to_thread(core.delete_namespaced_pod, name, NAMESPACE)  # graceful
        await wait_for(lambda t=target: t in removed, changed)  # type: ignore[misc]
        removal_ms.append((removed[target] - sent) * 1000)
        await asyncio.to_thread(core.delete_namespaced_pod, name, NAMESPACE, grace_period_seconds=0)
    return ready_ms, removal_ms


async def wait_for(check: Callable[[], bool], changed: asyncio.Event) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        changed.clear()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"no routing change within {WAIT_S} s")
        try:
            await asyncio.wait_for(changed.wait(), remaining)
        except TimeoutError:
            continue


async def throughput(core: Any, factory: ClientFactory, port: int, calls: int) -> dict[str, float]:
    await asyncio.to_thread(
        core.create_namespaced_pod, NAMESPACE, pod_body("bench-server", "127.0.0.1", port)
    )
    await asyncio.to_thread(
        core.patch_namespaced_pod_status, "bench-server", NAMESPACE, running_ready("127.0.0.1")
    )
    request = device_pb2.DeviceName(name="d")
    stub = factory.stub(SERVICE, device_pb2_grpc.DevSvcStub)
    pool = factory.pool(SERVICE)
    deadline = time.monotonic() + WAIT_S
    while f"127.0.0.1:{port}" not in {e.target for e in pool.endpoints()}:
        if time.monotonic() > deadline:
            raise RuntimeError("the server pod was not discovered")
        await asyncio.sleep(0.01)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        raw = device_pb2_grpc.DevSvcStub(channel)
        await raw.Get(request, timeout=5)
        await stub.Get(request, timeout=5)
        pairs = await alternating_pairs(
            concurrent_rate(CONCURRENCY),
            {
                "raw": lambda: raw.Get(request, timeout=5),
                "discovered": lambda: stub.Get(request, timeout=5),
            },
            THROUGHPUT_ROUNDS,
            calls,
            until=math.inf,
        )
    return {
        "raw": statistics.median(pair["raw"] for pair in pairs),
        "discovered": statistics.median(pair["discovered"] for pair in pairs),
        # Each pair's ratio sees one background load; the median pair ratio is the figure.
        "ratio": statistics.median(pair["discovered"] / pair["raw"] for pair in pairs),
    }


async def measure(
    port: int, rounds: int, calls: int, max_seconds: float, state_dir: Path
) -> dict[str, Any]:
    with running_devcluster(state_dir / "devcluster") as cluster:
        api = cluster.api_client()
        core = kubernetes.client.CoreV1Api(api)
        core.create_namespace(
            kubernetes.client.V1Namespace(metadata=kubernetes.client.V1ObjectMeta(name=NAMESPACE))
        )
        discovery = PodDiscovery(api, NAMESPACE, backoff=Backoff(0.02, 1.0))
        factory = ClientFactory(
            discovery,
            GrpcClientConfig(timeout=timedelta(seconds=5)),
            interceptors=lambda service: [],
        )
        try:
            until = time.monotonic() + max_seconds
            ready_ms, removal_ms = await convergence(core, discovery, factory, rounds, until)
            rates = await throughput(core, factory, port, calls)
        finally:
            await factory.close()
            await discovery.close()
            api.close()  # type: ignore[no-untyped-call]
    return {"ready_ms": ready_ms, "removal_ms": removal_ms, **rates}


def run_with_server(rounds: int, calls: int, max_seconds: float) -> dict[str, Any]:
    with (
        server_process(__file__) as (port,),
        tempfile.TemporaryDirectory(prefix="bench-discovery-") as folder,
    ):
        return asyncio.run(measure(port, rounds, calls, max_seconds, Path(folder)))


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--calls", type=int, default=1600)
    parser.add_argument("--max-seconds", type=float, default=90.0)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return 0
    figures = run_with_server(args.rounds, args.calls, args.max_seconds)
    ready_ms, removal_ms = figures["ready_ms"], figures["removal_ms"]
    summary = {
        "discovery_convergence_p50_ms": round(statistics.median(ready_ms), 2),
        "discovery_convergence_p99_ms": round(percentile(ready_ms, 0.99), 2),
        "discovery_removal_p50_ms": round(statistics.median(removal_ms), 2),
        "discovery_removal_p99_ms": round(percentile(removal_ms, 0.99), 2),
        "client_overhead_ratio": round(figures["ratio"], 3),
    }
    print(f"discovery over {len(ready_ms)} pods (status patch sent -> client pool changed):")
    print(
        f"  Ready -> routed           p50 {summary['discovery_convergence_p50_ms']:7.2f} ms  "
        f"p99 {summary['discovery_convergence_p99_ms']:7.2f} ms (goal p99 <= 50 ms)"
    )
    print(
        f"  deletionTimestamp -> out  p50 {summary['discovery_removal_p50_ms']:7.2f} ms  "
        f"p99 {summary['discovery_removal_p99_ms']:7.2f} ms (goal p99 <= 50 ms)"
    )
    print(
        f"throughput, {CONCURRENCY} concurrent callers, {THROUGHPUT_ROUNDS} alternating pairs:"
        f" raw channel {figures['raw']:.0f}/s, discovered stub {figures['discovered']:.0f}/s"
    )
    print(
        f"  client_overhead_ratio {summary['client_overhead_ratio']:.3f}"
        " (median of the pairs' discovered/raw; goal >= 0.90)"
    )
    merge_results(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
