"""RSS and open file descriptors of the system's processes, read from /proc by pid.

The devcluster runs each pod as a local process whose pid the kubelet reports as the
container id, so a sample is a read of /proc/<pid>/status and /proc/<pid>/fd. A process
is known by its pid and start time: a pod restarted in between is a new process, and
growth is reported only for processes present in both samples.
"""

from __future__ import annotations

import os
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


def _sample(name: str, pid: int) -> ProcessSample | None:
    try:
        stat = open(f"/proc/{pid}/stat").read()  # noqa: SIM115 - one read
        status = open(f"/proc/{pid}/status").read()  # noqa: SIM115 - one read
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:  # gone between the listing and the read
        return None
    started = int(stat.rsplit(")", 1)[1].split()[19])
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return ProcessSample(name, pid, started, rss, fds)


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


def growth(start: list[ProcessSample], end: list[ProcessSample]) -> list[Growth]:
    """Per process alive in both samples (same pid and start time)."""
    later = {(s.pid, s.started): s for s in end}
    found = []
    for first in start:
        last = later.get((first.pid, first.started))
        if last is not None:
            found.append(
                Growth(first.name, first.pid, first.rss_kib, last.rss_kib, first.fds, last.fds)
            )
    return found
