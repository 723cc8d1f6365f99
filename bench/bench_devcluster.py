"""devcluster API server: listing 5,000 pods, and one write fanned out to 200 watches.

Both figures are measured against a running `python -m devcluster serve` over HTTPS, with
baselines from the same run: GET /version (the cost of one request) for the list, and a
single watch for the fan-out. Prints the figures and their ratios; merges
devcluster_list_5000_pods_p50_ms and devcluster_watch_fanout_p99_ms, with their baselines
devcluster_version_baseline_p50_ms and devcluster_watch_single_baseline_p99_ms, into
bench/results.json.

    uv run python bench/bench_devcluster.py [--pods 5000] [--watchers 200] [--rounds 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from devcluster.testing import RunningDevCluster, running_devcluster

# bench/ scripts run with bench/ on sys.path; the root makes bench.results importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import merge_results, percentile

NAMESPACE = "bench"
MAX_SECONDS = 240.0
WAIT_S = 10.0


def pod(index: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"pod-{index:05d}",
            "labels": {
                "gomicro-service-app": f"go-micro.svc-{index % 5}",
                "gomicro-service-id": f"svc-{index}",
            },
            "annotations": {"gomicro-service-protocols": '{"8080":"http","9090":"grpc"}'},
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "registry.local/app:1.0",
                    "ports": [
                        {"containerPort": 8080, "name": "http"},
                        {"containerPort": 9090, "name": "grpc"},
                    ],
                    "env": [{"name": "SERVICE", "value": f"svc-{index % 5}"}],
                }
            ]
        },
    }


class Api:
    def __init__(self, cluster: RunningDevCluster, session: aiohttp.ClientSession) -> None:
        self.url = cluster.url
        self.session = session
        self.headers = {"Authorization": f"Bearer {cluster.admin_token}"}
        self.ssl = ssl.create_default_context(cafile=str(cluster.ca_file))

    async def request(self, method: str, path: str, **kwargs: Any) -> bytes:
        async with self.session.request(
            method,
            f"{self.url}{path}",
            headers={**self.headers, **kwargs.pop("headers", {})},
            ssl=self.ssl,
            **kwargs,
        ) as answer:
            data = await answer.read()
            if answer.status >= 300:
                raise RuntimeError(f"{method} {path}: {answer.status} {data[:200]!r}")
            return data


async def timed(api: Api, path: str, rounds: int, deadline: float) -> list[float]:
    samples: list[float] = []
    for _ in range(rounds):
        if time.monotonic() > deadline:
            break
        began = time.perf_counter()
        await api.request("GET", path)
        samples.append((time.perf_counter() - began) * 1000)
    return samples


async def bench_list(api: Api, pods: int, rounds: int, deadline: float) -> dict[str, float]:
    await api.request("POST", "/api/v1/namespaces", json={"metadata": {"name": NAMESPACE}})
    path = f"/api/v1/namespaces/{NAMESPACE}/pods"
    semaphore = asyncio.Semaphore(16)

    async def create(index: int) -> None:
        async with semaphore:
            await api.request("POST", path, json=pod(index))

    await asyncio.gather(*(create(i) for i in range(pods)))
    listed = json.loads(await api.request("GET", path))
    assert len(listed["items"]) == pods, len(listed["items"])
    lists = await timed(api, path, rounds, deadline)
    baseline = await timed(api, "/version", rounds, deadline)
    return {"list_p50": statistics.median(lists), "version_p50": statistics.median(baseline)}


async def fanout(api: Api, watchers: int, rounds: int, deadline: float) -> list[float]:
    """Latency from sending one ConfigMap write to each watcher reading its event."""
    path = f"/api/v1/namespaces/{NAMESPACE}/configmaps"
    name = f"fanout-{watchers}"
    created = json.loads(await api.request("POST", path, json={"metadata": {"name": name}}))
    version = created["metadata"]["resourceVersion"]
    sent: dict[str, float] = {}
    samples: list[float] = []
    ready = asyncio.Event()
    round_done = asyncio.Event()
    expected = 0
    opened = 0
    closing = False

    async def watch() -> None:
        nonlocal opened  # expected is read, never assigned, here
        params = {
            "watch": "1",
            "resourceVersion": version,
            "fieldSelector": f"metadata.name={name}",
            "timeoutSeconds": "600",
        }
        async with api.session.get(
            f"{api.url}{path}",
            params=params,
            headers=api.headers,
            ssl=api.ssl,
            timeout=aiohttp.ClientTimeout(total=None),
        ) as s:
            opened += 1
            if opened == watchers:
                ready.set()
            async for line in s.content:
                arrived = time.perf_counter()
                event = json.loads(line)
                stamp = event["object"].get("data", {}).get("round")
                if stamp in sent:
                    samples.append((arrived - sent[stamp]) * 1000)
                    if len(samples) >= expected:
                        round_done.set()
                if closing:
                    return

    tasks = [asyncio.create_task(watch()) for _ in range(watchers)]
    await asyncio.wait_for(ready.wait(), WAIT_S)
    await asyncio.sleep(0.2)  # every stream is registered server-side
    for number in range(rounds):
        if time.monotonic() > deadline:
            break
        stamp = str(number)
        expected = len(samples) + watchers
        round_done.clear()
        sent[stamp] = time.perf_counter()
        await api.request(
            "PATCH",
            f"{path}/{name}",
            data=json.dumps({"data": {"round": stamp}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        try:
            await asyncio.wait_for(round_done.wait(), WAIT_S)
        except TimeoutError as error:
            missed = expected - len(samples)
            raise RuntimeError(f"round {number}: {missed} watchers missed it") from error
    closing = True
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return samples


async def run(cluster: RunningDevCluster, args: argparse.Namespace) -> dict[str, float]:
    deadline = time.monotonic() + MAX_SECONDS
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        api = Api(cluster, session)
        listing = await bench_list(api, args.pods, args.rounds, deadline)
        single = await fanout(api, 1, args.rounds, deadline)
        many = await fanout(api, args.watchers, args.rounds, deadline)
    return {
        **listing,
        "watch_1_p99": percentile(single, 0.99),
        "watch_many_p99": percentile(many, 0.99),
        "watch_many_p50": statistics.median(many),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--watchers", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state, running_devcluster(Path(state)) as cluster:
        figures = asyncio.run(run(cluster, args))
    print(f"devcluster: list of {args.pods} pods")
    print(f"  p50 list                  {figures['list_p50']:8.2f} ms  (goal <= 100)")
    print(f"  p50 GET /version baseline {figures['version_p50']:8.2f} ms")
    print(f"  ratio list/version        {figures['list_p50'] / figures['version_p50']:8.1f}x")
    print(f"devcluster: one write to {args.watchers} watches")
    print(f"  p99 write->every watcher  {figures['watch_many_p99']:8.2f} ms  (goal <= 20)")
    print(f"  p50 write->every watcher  {figures['watch_many_p50']:8.2f} ms")
    print(f"  p99 one watch baseline    {figures['watch_1_p99']:8.2f} ms")
    print(
        f"  ratio {args.watchers}/1 watch p99      "
        f"{figures['watch_many_p99'] / figures['watch_1_p99']:8.1f}x"
    )
    merge_results(
        {
            "devcluster_list_5000_pods_p50_ms": round(figures["list_p50"], 2),
            "devcluster_version_baseline_p50_ms": round(figures["version_p50"], 2),
            "devcluster_watch_fanout_p99_ms": round(figures["watch_many_p99"], 2),
            "devcluster_watch_single_baseline_p99_ms": round(figures["watch_1_p99"], 2),
        }
    )


if __name__ == "__main__":
    main()
