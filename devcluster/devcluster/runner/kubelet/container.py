"""One container of a pod: its process, restarts with back-off, and its probes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devcluster.runner import podutil
from devcluster.runner.events import NORMAL, WARNING
from devcluster.runner.kube import Obj
from devcluster.runner.kubelet import process as proc
from devcluster.runner.kubelet.env import EnvError
from devcluster.runner.kubelet.probes import probe_settings, run_action

log = logging.getLogger(__name__)

# A run this long resets the back-off, as the kubelet's does after 10 minutes.
BACKOFF_RESET_S = 600.0

# Records an Event about this container: (type, reason, message).
Record = Callable[[str, str, str], None]


@dataclass
class Launch:
    """What starting the container needs, computed afresh for every start."""

    argv: list[str]
    env: dict[str, str]
    cwd: pathlib.Path


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 10.0
    max_s: float = 300.0

    def delay(self, crashes: int) -> float:
        """The first restart is immediate, then initial, 2x initial, ... up to max."""
        if crashes <= 1:
            return 0.0
        return float(min(self.initial_s * 2 ** (crashes - 2), self.max_s))


class ContainerRunner:
    def __init__(
        self,
        spec: Obj,
        *,
        pod_ip: str,
        restart_policy: str,
        log_path: pathlib.Path,
        launch: Callable[[Obj], Launch],
        on_change: Callable[[], None],
        backoff: Backoff,
        grace_s: Callable[[], float],
        record: Record,
        init: bool = False,
    ) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.pod_ip = pod_ip
        self.restart_policy = restart_policy
        self.log_path = log_path
        self.launch = launch
        self.on_change = on_change
        self.backoff = backoff
        self.grace_s = grace_s
        self.record = record
        self.init = init
        self.restart_count = 0
        self.state: Obj = {"waiting": {"reason": "ContainerCreating"}}
        self.last_state: Obj = {}
        self.ready = False
        self.started = False
        self.finished = False  # terminated for good (no restart coming)
        self.process: asyncio.subprocess.Process | None = None
        self.stopping = False
        self._kill_reason: str | None = None
        self._wake = asyncio.Event()
        # A new definition (the pod's image changed): adopted at the next start.
        self._next_spec: Obj | None = None
        self._redefined = asyncio.Event()
        self._last_env: dict[str, str] = {}
        self._last_cwd = pathlib.Path(".")

    # status ---------------------------------------------------------------------------------

    def status(self) -> Obj:
        image = self.spec.get("image", "")
        item: dict[str, Any] = {
            "name": self.name,
            "image": image,
            "imageID": f"devcluster://{image}",
            "ready": self.ready,
            "restartCount": self.restart_count,
            "started": self.started,
            "state": self.state,
        }
        if self.process is not None:
            item["containerID"] = f"devcluster://{self.process.pid}"
        if self.last_state:
            item["lastState"] = self.last_state
        return item

    def exited_ok(self) -> bool:
        terminated = self.state.get("terminated")
        return bool(terminated and terminated.get("exitCode") == 0)

    def _set(self, **changes: Any) -> None:
        for key, value in changes.items():
            setattr(self, key, value)
        self.on_change()

    # lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        crashes = 0
        while not self.stopping:
            if self._next_spec is not None:
                self.spec, self._next_spec = self._next_spec, None
                self._redefined.clear()
            changed = False
            try:
                launch = self.launch(self.spec)
            except (EnvError, ValueError) as error:
                self.record(WARNING, "Failed", f"Error: {error}")
                self._set(
                    state={
                        "waiting": {"reason": "CreateContainerConfigError", "message": str(error)}
                    }
                )
                await self._sleep(2.0)
                continue
            self._last_env, self._last_cwd = launch.env, launch.cwd
            try:
                self.process = await proc.start(launch.argv, launch.env, launch.cwd, self.log_path)
            except OSError as error:
                self.process = None
                message = f"exec {launch.argv[0]}: {error}"
                self.record(WARNING, "Failed", f"Error: {message}")
                self._record_exit(128, "StartError", message, started_at=podutil.timestamp())
            else:
                started_at = podutil.timestamp()
                began = time.monotonic()
                log.info(
                    "started %s (pid %d): %s", self.name, self.process.pid, " ".join(launch.argv)
                )
                self._set(
                    state={"running": {"startedAt": started_at}},
                    started=not self.spec.get("startupProbe") and not self.init,
                    ready=False,
                )
                changed = await self._supervise(started_at)
                if time.monotonic() - began > BACKOFF_RESET_S:
                    crashes = 0
            if self.stopping or not (changed or self._should_restart()):
                self._set(finished=True)
                return
            # A restart for a new definition is no crash: no back-off, as the kubelet's.
            crashes += 0 if changed else 1
            delay = 0.0 if changed else self.backoff.delay(crashes)
            self.last_state = {"terminated": self.state.get("terminated", {})}
            if delay > 0:
                message = f"back-off {delay:g}s restarting failed container={self.name}"
                self.record(WARNING, "BackOff", f"Back-off restarting failed container {self.name}")
                self._set(state={"waiting": {"reason": "CrashLoopBackOff", "message": message}})
                await self._sleep(delay)
                if self.is_stopping():
                    self._set(finished=True)
                    return
            self.restart_count += 1

    def is_stopping(self) -> bool:
        """Set by stop() while the run loop awaits (a method, so checks are fresh)."""
        return self.stopping

    def _should_restart(self) -> bool:
        if self.restart_policy == "Always" and not self.init:
            return True
        if self.restart_policy == "Never":
            return False
        return not self.exited_ok()  # OnFailure, and init containers under Always

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def redefine(self, spec: Obj) -> None:
        """The pod's spec changed this container (its image): like the kubelet when the
        container's hash changes, kill it (preStop, grace) and start the new one."""
        self._next_spec = spec
        self._redefined.set()
        self._wake.set()  # a container waiting in back-off starts the new one now

    @property
    def wanted_spec(self) -> Obj:
        """The definition this container runs, or will run once restarted."""
        return self._next_spec if self._next_spec is not None else self.spec

    async def _supervise(self, started_at: str) -> bool:
        """Until the process exits; answers whether it was killed for a new definition."""
        assert self.process is not None
        process = self.process
        probes = asyncio.create_task(self._probe(), name=f"probes-{self.name}")
        exited = asyncio.ensure_future(process.wait())
        redefined = asyncio.ensure_future(self._redefined.wait())
        changed = False
        try:
            await asyncio.wait({exited, redefined}, return_when=asyncio.FIRST_COMPLETED)
            if not exited.done() and not self.stopping:
                changed = True
                message = f"Container {self.name} definition changed, will be restarted"
                log.info("container %s: %s", self.name, message)
                self.record(NORMAL, "Killing", message)
                self._kill_reason = message
                await self._end(process, self.grace_s(), pre_stop=True)
            returncode = await exited
        finally:
            for task in (probes, redefined, exited):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probes
        # The main process is gone: nothing it spawned may outlive it.
        proc.signal_group(self.process, 9)
        code = proc.exit_code(returncode)
        reason = "Completed" if code == 0 else "Error"
        message = self._kill_reason or ""
        self._kill_reason = None
        self._record_exit(code, reason, message, started_at=started_at)
        return changed

    def _record_exit(self, code: int, reason: str, message: str, *, started_at: str) -> None:
        terminated: dict[str, Any] = {
            "exitCode": code,
            "reason": reason,
            "startedAt": started_at,
            "finishedAt": podutil.timestamp(),
        }
        if message:
            terminated["message"] = message
        if self.process is not None:
            terminated["containerID"] = f"devcluster://{self.process.pid}"
        self._set(state={"terminated": terminated}, ready=False)

    async def stop(self, grace_s: float, pre_stop: bool = True) -> None:
        """preStop within the grace period, then SIGTERM, then SIGKILL at its end."""
        self.stopping = True
        self._wake.set()
        process = self.process
        if process is None or process.returncode is not None:
            return
        await self._end(process, grace_s, pre_stop)

    async def _end(
        self, process: asyncio.subprocess.Process, grace_s: float, pre_stop: bool
    ) -> None:
        deadline = time.monotonic() + grace_s
        handler = (self.spec.get("lifecycle") or {}).get("preStop")
        if pre_stop and handler:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    run_action(
                        handler,
                        self.spec,
                        self.pod_ip,
                        self._last_env,
                        str(self._last_cwd),
                        grace_s,
                    ),
                    max(grace_s, 0.1),
                )
        # The kubelet grants at least 2 s after a preStop hook that overran.
        await proc.stop(process, max(deadline - time.monotonic(), 2.0 if handler else 0.0))

    async def _kill_for_restart(self, reason: str) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        log.info("container %s: %s; restarting", self.name, reason)
        self.record(NORMAL, "Killing", reason)
        self._kill_reason = reason
        await proc.stop(self.process, self.grace_s())

    # probes -----------------------------------------------------------------------------------

    async def _probe(self) -> None:
        startup = self.spec.get("startupProbe")
        if startup and not self.init:
            if not await self._run_probe(startup, "Startup"):
                await self._kill_for_restart("Container failed startup probe, will be restarted")
                return
            self._set(started=True)
        if self.init:
            return
        tasks = []
        readiness = self.spec.get("readinessProbe")
        if readiness:
            tasks.append(asyncio.create_task(self._readiness(readiness)))
        else:
            self._set(ready=True)
        liveness = self.spec.get("livenessProbe")
        if liveness:
            tasks.append(asyncio.create_task(self._liveness(liveness)))
        try:
            if tasks:
                await asyncio.gather(*tasks)
            else:
                await asyncio.Event().wait()
        finally:
            for task in tasks:
                task.cancel()

    async def _run_probe(self, probe: Obj, kind: str) -> bool:
        """The startup probe: periodic until success, or failureThreshold failures."""
        settings = probe_settings(probe)
        await asyncio.sleep(settings["initial_delay"])
        failures = 0
        while True:
            ok, message = await self._check(probe, settings["timeout"])
            if ok:
                return True
            failures += 1
            # Expected while the process starts; giving up is logged as the restart reason.
            log.debug("%s probe of %s failed (%d): %s", kind, self.name, failures, message)
            self._unhealthy(kind, message)
            if failures >= settings["failure_threshold"]:
                return False
            await asyncio.sleep(settings["period"])

    async def _readiness(self, probe: Obj) -> None:
        settings = probe_settings(probe)
        await asyncio.sleep(settings["initial_delay"])
        successes = failures = 0
        while True:
            ok, message = await self._check(probe, settings["timeout"])
            if ok:
                successes, failures = successes + 1, 0
                if not self.ready and successes >= settings["success_threshold"]:
                    self._set(ready=True)
            else:
                successes, failures = 0, failures + 1
                self._unhealthy("Readiness", message)
                if self.ready and failures >= settings["failure_threshold"]:
                    log.info("readiness probe of %s failed: %s", self.name, message)
                    self._set(ready=False)
            await asyncio.sleep(settings["period"])

    async def _liveness(self, probe: Obj) -> None:
        settings = probe_settings(probe)
        await asyncio.sleep(settings["initial_delay"])
        failures = 0
        while True:
            ok, message = await self._check(probe, settings["timeout"])
            failures = 0 if ok else failures + 1
            if not ok:
                self._unhealthy("Liveness", message)
            if failures >= settings["failure_threshold"]:
                await self._kill_for_restart(
                    f"Container failed liveness probe, will be restarted: {message}"
                )
                return
            await asyncio.sleep(settings["period"])

    def _unhealthy(self, kind: str, message: str) -> None:
        """Every failed probe is an Event, as the kubelet's prober records it."""
        self.record(WARNING, "Unhealthy", f"{kind} probe failed: {message}")

    async def _check(self, probe: Obj, timeout_s: float) -> tuple[bool, str]:
        return await run_action(
            probe, self.spec, self.pod_ip, self._last_env, str(self._last_cwd), timeout_s
        )
