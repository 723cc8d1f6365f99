"""The footprint of the whole system as `make run` starts it: how long until every
Deployment is available, how long each service takes from process start to ready, and
each service process's resident memory after 1,000 requests.

A service's start to ready is timed on a replacement pod once the system is idle (one
pod of it deleted), and also reported as `make run` starts every pod at once. The system
is tests/cluster_system.py's (`python -m devcluster run` with .k8s and the dev
Secrets, two replicas of every service). A pod's process is the pid its container id
names; its start is read from /proc (process age against the uptime clock) and its
ready moment is the `<name> <version> started` line micro.app logs once it reports
SERVING, with its millisecond timestamp. Requests go through the NodePorts: logins, and
device lookups through admin-srv and through data-srv.

Merges make_run_ready_s, service_ready_s_max, service_rss_mib_max and
service_rss_mib_grpc_only_max (and each service's figures under footprint_<service>_*)
into bench/results.json.

    uv run python bench/bench_footprint.py
"""

from __future__ import annotations

import datetime
import os
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

# bench/ scripts run with bench/ on sys.path; the root makes bench.results importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.results import merge_results
from devcluster.runner.testing import pod_pids, ready_pods, wait_for
from tests.cluster_system import LOGIN, NAMESPACE, System, running_system

REQUESTS = 1000
LOGINS = 100  # of REQUESTS; the rest are device lookups, half through each gateway
# Services that serve only gRPC (and the admin port): no public HTTP server.
GRPC_ONLY = ("device-srv", "token-srv", "user-srv")
STARTED = re.compile(r"ts=(\S+Z) .* msg=\S+ \S+ started$")


def process_started_at(pid: int) -> float:
    """Wall-clock time the process started: its age on the uptime clock (10 ms ticks)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    ticks = int(stat.rsplit(")", 1)[1].split()[19])
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]
    return kib / 1024


def ready_at(system: System, pod: str) -> float | None:
    """When the pod's service logged that it started (its latest start), or None."""
    found = None
    for path in sorted((system.node.state_dir / "logs" / NAMESPACE / pod).rglob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            match = STARTED.search(line)
            if match:
                stamp = datetime.datetime.fromisoformat(match.group(1).replace("Z", "+00:00"))
                found = stamp.timestamp()
    return found


def quiet_start_s(system: System, service: str) -> float:
    """Start to ready of one new pod of `service` on the otherwise idle system: one pod is
    deleted and its replacement timed (the start of `make run` starts every pod at once,
    so each one's time there is mostly the others' CPU)."""
    selector = f"app={service}"
    (gone, *_) = ready_pods(system.node.core, NAMESPACE, selector)
    system.node.core.delete_namespaced_pod(gone.metadata.name, NAMESPACE)
    names = {p.metadata.name for p in ready_pods(system.node.core, NAMESPACE, selector)}

    def replacement() -> object | None:
        pods = ready_pods(system.node.core, NAMESPACE, selector)
        new = [p for p in pods if p.metadata.name not in names]
        return new[0] if new and ready_at(system, new[0].metadata.name) is not None else None

    pod = wait_for(f"a new ready {service} pod", replacement, timeout_s=60, every_s=0.2)
    at = ready_at(system, pod.metadata.name)
    assert at is not None
    (pid,) = pod_pids([pod])
    return at - process_started_at(pid)


def drive(system: System) -> int:
    """REQUESTS requests through the NodePorts; the number answered 200."""
    ok = 0
    for _ in range(LOGINS):
        ok += system.http.post("/admin/v1/login", json=LOGIN).status_code == 200
    headers = {"Authorization": f"Bearer {system.token()}"}
    lookups = REQUESTS - LOGINS
    for n in range(lookups):
        if n % 2:
            reply = system.http.get("/admin/v1/devices/device1", headers=headers)
        else:
            reply = system.data.get("/data/device1")
        ok += reply.status_code == 200
    return ok


def measure() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.monotonic()
        with running_system(Path(tmp)) as system:
            make_run_ready_s = time.monotonic() - started
            answered = drive(system)
            rss: dict[str, list[float]] = defaultdict(list)
            crowded: dict[str, list[float]] = defaultdict(list)
            for pod in system.node.core.list_namespaced_pod(NAMESPACE).items:
                service = pod.metadata.labels.get("app", pod.metadata.name)
                for pid in pod_pids([pod]):
                    rss[service].append(rss_mib(pid))
                    at = ready_at(system, pod.metadata.name)
                    if at is not None:
                        crowded[service].append(at - process_started_at(pid))
            ready = {service: quiet_start_s(system, service) for service in sorted(rss)}
    if answered != REQUESTS:
        raise SystemExit(f"only {answered} of {REQUESTS} requests answered 200")
    figures = {
        "make_run_ready_s": round(make_run_ready_s, 2),
        "service_ready_s_max": round(max(ready.values()), 2),
        "service_rss_mib_max": round(max(max(v) for v in rss.values()), 1),
        "service_rss_mib_grpc_only_max": round(max(max(rss[s]) for s in GRPC_ONLY), 1),
    }
    for service in sorted(rss):
        key = service.replace("-", "_")
        figures[f"footprint_{key}_rss_mib"] = round(max(rss[service]), 1)
        figures[f"footprint_{key}_ready_s"] = round(ready[service], 2)
        figures[f"footprint_{key}_ready_at_make_run_s"] = round(max(crowded[service]), 2)
    return figures


def main() -> int:
    figures = measure()
    merge_results(figures)
    print(f"whole system, {REQUESTS} requests through the NodePorts:")
    for name, value in figures.items():
        print(f"  {name:42s} {value}")
    print("goals: service_rss_mib_max <= 100, grpc_only <= 80, service_ready_s_max <= 1.5,")
    print("       make_run_ready_s <= 20")
    return 0


if __name__ == "__main__":
    sys.exit(main())
