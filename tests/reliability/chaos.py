"""Chaos actions on the running system, each timed from its start to the system's recovery.

A graceful pod delete, a crash (SIGKILL of a pod's process: the kubelet restarts the
container), a rolling update of a Deployment, and a restart of the devcluster API
server (the runner has no command for it, so it is done as an operator would: stop the
server process, start one on the same port and state folder).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import time
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

from devcluster.runner.testing import alive, children, pod_pids, ready_pods, wait_for
from devcluster.testing import RunningDevCluster

from ..cluster_system import NAMESPACE, SERVICES, System, replicas_ready, rolled_out

BACKENDS = ("user-srv", "token-srv", "device-srv")
GATEWAYS = ("admin-srv", "data-srv")
# Crashes go round the backends, token-srv first: its GenerateToken (every login) is the
# one non-idempotent call, retried only because it carries an idempotency key.
CRASH_ORDER = ("token-srv", "user-srv", "device-srv")
RECOVERY_TIMEOUT_S = 90.0
KINDS = ("delete", "crash", "rollout", "apiserver")


@dataclass(frozen=True)
class ChaosEvent:
    kind: str
    service: str  # the service acted on ("" for the API server)
    pod: str
    start: float  # time.monotonic() when the action was taken
    recovered: float  # when every Deployment had its replicas ready again
    # A crash: when the killed process was seen gone (polled every millisecond, finer
    # than the time a killed process takes to go).
    gone: float = 0.0


def _api_answers(system: System) -> bool:
    """The API answers (a client's pooled connection may have died with the server)."""
    try:
        system.node.core.list_namespaced_pod(NAMESPACE, limit=1)
    except Exception:  # any failure means not yet
        return False
    return True


def _steady(system: System) -> bool:
    return _api_answers(system) and all(replicas_ready(system, app, set()) for app in SERVICES)


def wait_steady(system: System) -> float:
    wait_for("every service to have two ready pods", partial(_steady, system), RECOVERY_TIMEOUT_S)
    return time.monotonic()


def restart_count(pod: Any) -> int:
    return sum(s.restart_count for s in pod.status.container_statuses or [])


class Chaos:
    def __init__(self, system: System, rng: random.Random) -> None:
        self._system = system
        self._rng = rng
        self._rollouts = 0
        self._crashes = 0
        self._rollout_order: list[str] = []
        self._apiserver: RunningDevCluster | None = None

    def act(self, kind: str) -> ChaosEvent:
        action = {
            "delete": self.delete_pod,
            "crash": self.crash_pod,
            "rollout": self.rolling_update,
            "apiserver": self.restart_apiserver,
        }[kind]
        return action()

    def _victim(self, services: tuple[str, ...]) -> tuple[str, Any]:
        service = self._rng.choice(services)
        pods = ready_pods(self._system.node.core, NAMESPACE, f"app={service}")
        return service, self._rng.choice(pods)

    def delete_pod(self) -> ChaosEvent:
        service, pod = self._victim(BACKENDS)
        name = pod.metadata.name
        start = time.monotonic()
        self._system.node.core.delete_namespaced_pod(name, NAMESPACE)
        wait_for(
            f"{service} to replace {name}",
            partial(replicas_ready, self._system, service, {name}),
            RECOVERY_TIMEOUT_S,
            0.2,
        )
        return ChaosEvent("delete", service, name, start, wait_steady(self._system))

    def crash_pod(self, service: str | None = None, name: str | None = None) -> ChaosEvent:
        """SIGKILL a backend pod's process (a random one, or `name` of `service`) and wait
        for the kubelet's restart."""
        if service is not None and name is not None:
            pod = self._system.node.core.read_namespaced_pod(name, NAMESPACE)
        else:
            if service is None:
                service = CRASH_ORDER[self._crashes % len(CRASH_ORDER)]
                self._crashes += 1
            service, pod = self._victim((service,))
            name = pod.metadata.name
        (pid,) = pod_pids([pod])
        restarts = restart_count(pod)
        start = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        wait_for(f"{name}'s process {pid} to die", lambda: not alive(pid), 5.0, 0.001)
        gone = time.monotonic()

        def restarted() -> bool:
            for ready in ready_pods(self._system.node.core, NAMESPACE, f"app={service}"):
                if ready.metadata.name == name and restart_count(ready) > restarts:
                    return True
            return False

        wait_for(f"{name} to restart after SIGKILL", restarted, RECOVERY_TIMEOUT_S, 0.2)
        return ChaosEvent("crash", service, name, start, wait_steady(self._system), gone)

    def rolling_update(self) -> ChaosEvent:
        """Roll a Deployment: the two gateways in a random order first (clients reach
        them through the NodePort proxy), then the backends, then round again."""
        if not self._rollout_order:
            gateways, backends = list(GATEWAYS), list(BACKENDS)
            self._rng.shuffle(gateways)
            self._rng.shuffle(backends)
            self._rollout_order = gateways + backends
        service = self._rollout_order.pop(0)
        before = {
            p.metadata.name for p in ready_pods(self._system.node.core, NAMESPACE, f"app={service}")
        }
        self._rollouts += 1
        annotations = {"reliability/rollout": str(self._rollouts)}
        patch = {"spec": {"template": {"metadata": {"annotations": annotations}}}}
        start = time.monotonic()
        self._system.node.apps.patch_namespaced_deployment(service, NAMESPACE, patch)
        wait_for(
            f"{service} rolled out",
            partial(rolled_out, self._system, service, before),
            RECOVERY_TIMEOUT_S,
            0.2,
        )
        return ChaosEvent("rollout", service, "", start, wait_steady(self._system))

    def restart_apiserver(self) -> ChaosEvent:
        start = time.monotonic()
        if self._apiserver is None:
            self._stop_runners_apiserver()
            url = urlsplit(self._system.node.api.configuration.host)
            assert url.hostname is not None
            assert url.port is not None
            self._apiserver = RunningDevCluster(
                self._system.node.state_dir, host=url.hostname, port=url.port
            )
            self._apiserver.start()
        else:
            self._apiserver.restart()
        return ChaosEvent("apiserver", "", "", start, wait_steady(self._system))

    def _stop_runners_apiserver(self) -> None:
        servers = [
            pid
            for pid in children(self._system.node.process.pid)
            if b"serve" in _cmdline(pid) and b"devcluster" in _cmdline(pid)
        ]
        assert len(servers) == 1, f"the runner's API server process: {servers}"
        os.kill(servers[0], signal.SIGTERM)
        wait_for("the API server to stop", lambda: not alive(servers[0]), 30)

    def close(self) -> None:
        """Stop the API server this started, after the runner has stopped its pods."""
        if self._apiserver is not None:
            self._apiserver.stop()


def _cmdline(pid: int) -> bytes:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/cmdline", "rb") as file:
        return file.read()
    return b""
