"""ConfigMap patch -> config observer call latency, against the devcluster over HTTPS.

Each round patches the service's ConfigMap and times two listeners of the same change:
the config observer (list/watch + parse + merge + validate + notify) and, as the
baseline measured in the same run, a bare Informer listener on the same ConfigMaps (the
watch delivery alone). Prints both and their ratio; merges config_reload_p99_ms (and the
baseline) into bench/results.json.

    uv run python bench/bench_config.py [--rounds 200] [--max-seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import kubernetes.client
import yaml

from devcluster.testing import running_devcluster
from micro.config import load_config
from micro.config.model import Section, ServiceConfig
from micro.config.reload import Reload
from micro.kube.informer import Informer, InformerEvent
from micro.kube.resources import CONFIG_MAPS

# bench/ scripts run with bench/ on sys.path; the root makes bench.results importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import merge_results, percentile

NAMESPACE = "bench-config"
SERVICE = "go-micro.bench-srv"
NAME = "bench-srv"
WAIT_S = 10.0


class Counter(Section):
    reload_policy = Reload.LIVE  # its observer is what the bench times

    value: int = 0


class BenchConfig(ServiceConfig):
    counter: Counter = Counter()


def document(value: int) -> dict[str, str]:
    return {"config.yaml": yaml.safe_dump({"counter": {"value": value}})}


async def measure(rounds: int, max_seconds: float, state_dir: Path) -> dict[str, float]:
    with running_devcluster(state_dir / "devcluster") as cluster:
        api = cluster.api_client()
        core = kubernetes.client.CoreV1Api(api)
        meta = kubernetes.client.V1ObjectMeta
        core.create_namespace(kubernetes.client.V1Namespace(metadata=meta(name=NAMESPACE)))
        core.create_namespaced_config_map(
            NAMESPACE,
            kubernetes.client.V1ConfigMap(
                metadata=meta(name=NAME, namespace=NAMESPACE, labels={"app": NAME}),
                data=document(0),
            ),
        )
        config_dir = state_dir / "configs"
        config_dir.mkdir()
        remote = {"remote": {"type": "k8s", "k8s": {"namespace": NAMESPACE}}}
        (config_dir / "remote.yaml").write_text(yaml.safe_dump(remote))

        handle = load_config(BenchConfig, service=SERVICE, config_dir=config_dir, env={}, api=api)
        baseline = Informer(api, CONFIG_MAPS, namespace=NAMESPACE, label_selector=f"app={NAME}")
        observed: dict[int, float] = {}
        delivered: dict[int, float] = {}
        both_arrived = asyncio.Event()

        def check(value: int) -> None:
            if value in observed and value in delivered:
                both_arrived.set()

        def on_counter(counter: Counter) -> None:
            observed[counter.value] = time.perf_counter()
            check(counter.value)

        def on_events(events: Sequence[InformerEvent]) -> None:
            for event in events:
                text = (event.object.get("data") or {}).get("config.yaml", "")
                value = (yaml.safe_load(text) or {}).get("counter", {}).get("value")
                if isinstance(value, int):
                    delivered.setdefault(value, time.perf_counter())
                    check(value)

        handle.subscribe(lambda c: c.counter, on_counter)
        baseline.subscribe(on_events)
        await handle.start()
        await baseline.start()
        await baseline.wait_synced(WAIT_S)
        config_ms: list[float] = []
        watch_ms: list[float] = []
        deadline = time.monotonic() + max_seconds
        try:
            for value in range(1, rounds + 1):
                if time.monotonic() > deadline:
                    break
                patch = {"data": document(value)}
                both_arrived.clear()
                sent = time.perf_counter()
                await asyncio.to_thread(core.patch_namespaced_config_map, NAME, NAMESPACE, patch)
                try:
                    await asyncio.wait_for(both_arrived.wait(), WAIT_S)
                except TimeoutError:
                    raise RuntimeError(
                        f"round {value}: no observer call within {WAIT_S} s"
                    ) from None
                config_ms.append((observed[value] - sent) * 1000)
                watch_ms.append((delivered[value] - sent) * 1000)
        finally:
            await baseline.stop()
            await handle.stop()
            api.close()  # type: ignore[no-untyped-call]
    return {
        "rounds": len(config_ms),
        "config_p50": statistics.median(config_ms),
        "config_p99": percentile(config_ms, 0.99),
        "watch_p50": statistics.median(watch_ms),
        "watch_p99": percentile(watch_ms, 0.99),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-config-") as folder:
        figures = asyncio.run(measure(args.rounds, args.max_seconds, Path(folder)))
    ratio = figures["config_p99"] / figures["watch_p99"] if figures["watch_p99"] else 0.0
    print(f"config reload over {int(figures['rounds'])} ConfigMap patches:")
    print(
        f"  patch -> config observer  p50 {figures['config_p50']:7.2f} ms  "
        f"p99 {figures['config_p99']:7.2f} ms (goal <= 100 ms)"
    )
    print(
        f"  patch -> watch event      p50 {figures['watch_p50']:7.2f} ms  "
        f"p99 {figures['watch_p99']:7.2f} ms (baseline)"
    )
    print(f"  ratio config/watch p99    {ratio:.2f}x")
    merge_results(
        {
            "config_reload_p99_ms": round(figures["config_p99"], 2),
            "config_reload_p50_ms": round(figures["config_p50"], 2),
            "config_watch_baseline_p99_ms": round(figures["watch_p99"], 2),
        }
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
