"""RSS and open file descriptors of the system's processes, read from /proc by pid.

The devcluster runs each pod as a local process whose pid the kubelet reports as the
container id, so a sample is a read of /proc/<pid>/status and /proc/<pid>/fd. A process
is known by its pid and start time: a pod restarted in between is a new process. Growth
is from a process's first sample to its last, for every process seen at least twice.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from typing import Any

from devcluster.runner.testing import pod_pids

from ..cluster_system import NAMESPACE, System


@dataclass(frozen=True)
class ProcessSample:
    name: str  # the pod's name, or "devcluster-runner"
    pid: int
    started: int  # /proc/<pid>/stat starttime (clock ticks since boot)
    rss_kib: int
    fds: int
    at: float  # time.monotonic() of the sample


def _sample(name: str, pid: int) -> ProcessSample | None:
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115 - one read
        status = open(f"/proc/{pid}/status").read()  # noqa: SIM115 - one read
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:  # gone between the listing and the read
        return None
    started = int(stat.rsplit(")", 1)[1].split()[19])
    rss_lines = [line for line in status.splitlines() if line.startswith("VmRSS:")]
    if not rss_lines:  # exiting: a zombie has no memory left to report
        return None
    rss = int(rss_lines[0].split()[1])
    return ProcessSample(name, pid, started, rss, fds, time.monotonic())


def sample(system: System) -> list[ProcessSample]:
    """Every pod process of the namespace and the runner itself."""
    found = []
    for pod in system.node.core.list_namespaced_pod(NAMESPACE).items:
        for pid in pod_pids([pod]):
            found.append(_sample(pod.metadata.name, pid))
    found.append(_sample("devcluster-runner", system.node.process.pid))
    return [s for s in found if s is not None]


@dataclass(frozen=True)
class Growth:
    name: str
    pid: int
    seconds: float  # between the first and the last sample
    rss_start_kib: int
    rss_end_kib: int
    fds_start: int
    fds_end: int

    @property
    def rss_growth_kib(self) -> int:
        return self.rss_end_kib - self.rss_start_kib

    @property
    def fd_growth(self) -> int:
        return self.fds_end - self.fds_start

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rss_growth_kib": self.rss_growth_kib, "fd_growth": self.fd_growth}


def growth(samples: list[list[ProcessSample]]) -> list[Growth]:
    """Per process (pid and start time) seen in two samples or more: first to last."""
    first: dict[tuple[int, int], ProcessSample] = {}
    last: dict[tuple[int, int], ProcessSample] = {}
    for taken in samples:
        for one in taken:
            first.setdefault((one.pid, one.started), one)
            last[(one.pid, one.started)] = one
    return [
        Growth(a.name, a.pid, round(b.at - a.at, 1), a.rss_kib, b.rss_kib, a.fds, b.fds)
        for key, a in first.items()
        if (b := last[key]) is not a
    ]
