"""One pod on the node: its address, files, containers, status and termination."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pathlib
import shutil
import time
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from devcluster.runner import podutil
from devcluster.runner.events import WARNING, EventRecorder, container_field_path
from devcluster.runner.kube import MERGE_PATCH, POD, Kube, Obj
from devcluster.runner.kubelet import env as envs
from devcluster.runner.kubelet.container import Backoff, ContainerRunner, Launch
from devcluster.runner.kubelet.env import EnvError, Lookup
from devcluster.runner.kubelet.images import ImageMap, argv
from devcluster.runner.kubelet.ipam import AddressPool
from devcluster.runner.kubelet.tokens import TokenCache, request_token
from devcluster.runner.kubelet.volumes import SERVICE_ACCOUNT_PATH, PodFiles

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 30
RENEW_RETRY_S = 2.0  # after a failed token renewal (the API away, the pod going)


@dataclass
class NodeContext:
    """What every pod worker of this kubelet shares."""

    kube: Kube
    node_name: str
    node_address: str
    api_host: str
    api_port: int
    ca_data: bytes
    pods_dir: pathlib.Path
    logs_dir: pathlib.Path
    addresses: AddressPool
    images: ImageMap
    lookup: Lookup
    backoff: Backoff
    events: EventRecorder
    token_refresh_cap_s: float | None = None  # test-only (tokens.REFRESH_CAP_ENV)


def _automount(pod: Obj, lookup: Lookup) -> bool:
    spec = pod["spec"]
    if "automountServiceAccountToken" in spec:
        return bool(spec["automountServiceAccountToken"])
    account = lookup(
        "ServiceAccount", pod["metadata"]["namespace"], spec.get("serviceAccountName", "default")
    )
    return not (account is not None and account.get("automountServiceAccountToken") is False)


class PodWorker:
    def __init__(self, node: NodeContext, pod: Obj) -> None:
        self.node = node
        self.pod = pod
        self.uid: str = pod["metadata"]["uid"]
        self.key = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        self.folder = node.pods_dir / self.uid
        self.log_dir = node.logs_dir / pod["metadata"]["namespace"] / pod["metadata"]["name"]
        self.pod_ip = ""
        self.start_time = podutil.timestamp()
        self.init_runners: list[ContainerRunner] = []
        self.runners: list[ContainerRunner] = []
        self.initialized = not pod["spec"].get("initContainers")
        self.config_error = ""
        self.terminating = False
        self.gone = False
        self._dirty = asyncio.Event()
        self._last_written: Obj | None = None
        self._conditions: dict[str, Obj] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._done = asyncio.Event()
        self.files: PodFiles | None = None
        self._stop_lock = asyncio.Lock()
        self.tokens = TokenCache(self._request_token, node.token_refresh_cap_s)
        self._renewal: asyncio.Future[None] | None = None  # a volume rewrite in a thread

    # entry points ---------------------------------------------------------------------------

    def start(self) -> None:
        self._tasks.append(asyncio.create_task(self._run(), name=f"pod-{self.key}"))
        self._tasks.append(asyncio.create_task(self._status_writer(), name=f"status-{self.key}"))

    def update(self, pod: Obj) -> None:
        """A newer pod from the API. A container whose image changed is restarted with
        the new one, as the kubelet does (the API allows no other container change)."""
        self.pod = pod
        wanted = {c["name"]: c for c in pod["spec"].get("containers", [])}
        for runner in self.runners:
            spec = wanted.get(runner.name)
            if spec is not None and spec.get("image") != runner.wanted_spec.get("image"):
                runner.redefine(spec)

    async def wait(self) -> None:
        await self._done.wait()

    # running ----------------------------------------------------------------------------------

    def _container_ports(self) -> list[int]:
        return [
            int(port["containerPort"])
            for container in self.pod["spec"].get("containers", [])
            for port in container.get("ports") or []
            if port.get("protocol", "TCP") == "TCP"
        ]

    async def _run(self) -> None:
        try:
            self.pod_ip = self.node.addresses.allocate(self.uid, self._container_ports())
            self.pod.setdefault("status", {})["podIP"] = self.pod_ip
            self.pod["status"]["hostIP"] = self.node.node_address
            self._changed()
            await self._prepare_files()
            if self.terminating:
                return
            self._tasks.append(asyncio.create_task(self._renew_tokens(), name=f"tokens-{self.key}"))
            restart_policy = self.pod["spec"].get("restartPolicy", "Always")
            for spec in self.pod["spec"].get("initContainers") or []:
                runner = self._runner(spec, restart_policy, init=True)
                self.init_runners.append(runner)
            for runner in self.init_runners:
                await runner.run()
                if not runner.exited_ok() or self.terminating:
                    return  # the pod fails (or is going away) before its app containers
            self.initialized = True
            self.runners = [
                self._runner(spec, restart_policy)
                for spec in self.pod["spec"].get("containers", [])
            ]
            self._changed()
            await asyncio.gather(*(r.run() for r in self.runners))
        except Exception:
            log.exception("pod %s failed in the kubelet", self.key)
            raise
        finally:
            self._changed()

    async def _prepare_files(self) -> None:
        """Volumes and the service-account files; a missing ConfigMap/Secret is retried."""
        automount = _automount(self.pod, self.node.lookup)
        while not self.terminating:
            self.files = PodFiles(self.folder, self.pod, self.node.lookup, self._token)
            try:
                await asyncio.to_thread(self.files.prepare, self.node.ca_data, automount)
                self.config_error = ""
                return
            except (EnvError, ApiException) as error:
                self.config_error = str(error)
                log.warning("pod %s: %s", self.key, error)
                self.node.events.record(self.pod, WARNING, "FailedMount", str(error))
                self._changed()
                await asyncio.sleep(2.0)

    def _token(self, audiences: list[str], seconds: int) -> str:
        """The pod's token for audiences (called from a worker thread): kept until due."""
        return self.tokens.get(audiences, seconds)

    def _request_token(self, audiences: list[str], seconds: int) -> str:
        return request_token(self.node.kube, self.pod, audiences, seconds)

    async def _renew_tokens(self) -> None:
        """Rewrite the volumes that show tokens whenever a kept token falls due."""
        automount = _automount(self.pod, self.node.lookup)
        while True:
            due = self.tokens.next_refresh()
            if due is None or self.files is None:
                return  # no token in this pod
            await asyncio.sleep(max(due - time.monotonic(), 0.0))
            if self.terminating:
                return
            files = self.files
            # Shielded and awaited by terminate(): a thread still writing must not
            # recreate the pod's folder after its clean-up.
            self._renewal = asyncio.ensure_future(
                asyncio.to_thread(files.write_token_volumes, self.node.ca_data, automount)
            )
            try:
                await asyncio.shield(self._renewal)
            except (EnvError, ApiException, OSError) as error:
                log.warning("pod %s: renewing its tokens: %s", self.key, error)
                await asyncio.sleep(RENEW_RETRY_S)

    def _runner(self, spec: Obj, restart_policy: str, init: bool = False) -> ContainerRunner:
        field_path = container_field_path(spec["name"], init)

        def record(event_type: str, reason: str, message: str) -> None:
            self.node.events.record(self.pod, event_type, reason, message, field_path)

        return ContainerRunner(
            spec,
            pod_ip=self.pod_ip,
            restart_policy=restart_policy,
            log_path=self.log_dir / f"{spec['name']}.log",
            launch=self._launch,
            on_change=self._changed,
            backoff=self.node.backoff,
            grace_s=self._grace_s,
            record=record,
            init=init,
        )

    def _grace_s(self) -> float:
        grace = self.pod["metadata"].get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", DEFAULT_GRACE_S)
        return float(grace)

    def _launch(self, spec: Obj) -> Launch:
        mapped = self.node.images.lookup(spec.get("image", ""))
        if mapped is None:
            raise EnvError(
                f"image {spec.get('image')!r} has no local command in {self.node.images.source}"
            )
        assert self.files is not None
        root = self.files.container_root(spec["name"])
        mapped.link_files(root)
        base = {
            **envs.inherited(),
            "HOME": str(root),
            "HOSTNAME": self.pod["metadata"]["name"],
            "KUBERNETES_SERVICE_HOST": self.node.api_host,
            "KUBERNETES_SERVICE_PORT": str(self.node.api_port),
            "KUBERNETES_SERVICE_PORT_HTTPS": str(self.node.api_port),
            "KUBE_SERVICEACCOUNT_DIR": str(root / SERVICE_ACCOUNT_PATH.lstrip("/")),
            "DEVCLUSTER_ROOT": str(root),
            "MICRO_BIND_HOST": self.pod_ip,
            **mapped.image_env(root),
        }
        environment = envs.container_env(self.pod, spec, self.node.lookup, base)
        words = [envs.expand(word, environment) for word in argv(mapped, spec)]
        if spec.get("workingDir"):
            cwd = root / str(spec["workingDir"]).lstrip("/")
            cwd.mkdir(parents=True, exist_ok=True)
        else:
            cwd = mapped.working_dir or root
        return Launch(argv=words, env=environment, cwd=cwd)

    # termination ------------------------------------------------------------------------------

    async def terminate(self, *, delete: bool, grace_s: float | None = None) -> None:
        """preStop, SIGTERM, grace period, SIGKILL for every container; then the final
        status and, when asked, the DELETE that removes the pod from the API."""
        async with self._stop_lock:
            if self._done.is_set():
                return
            self.terminating = True
            grace = self._grace_s() if grace_s is None else grace_s
            await asyncio.gather(
                *(r.stop(grace) for r in [*self.init_runners, *self.runners]),
                return_exceptions=True,
            )
            for task in self._tasks[:1]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, 5)
            if delete and not self.gone:
                await self._flush_status()
                meta = self.pod["metadata"]
                try:
                    await self.node.kube.delete(
                        POD, meta["name"], meta["namespace"], grace_period_seconds=0, uid=self.uid
                    )
                except ApiException as error:
                    log.warning("pod %s: delete failed: %s", self.key, error)
            for task in self._tasks:
                task.cancel()
            if self._renewal is not None:
                with contextlib.suppress(Exception):
                    await self._renewal
            self._cleanup()
            self._done.set()

    def _cleanup(self) -> None:
        if self.pod_ip:
            self.node.addresses.release(self.pod_ip)
        shutil.rmtree(self.folder, ignore_errors=True)

    def remove_logs(self) -> None:
        shutil.rmtree(self.log_dir, ignore_errors=True)

    # status -----------------------------------------------------------------------------------

    def _changed(self) -> None:
        self._dirty.set()

    def _condition(self, kind: str, ok: bool, reason: str = "") -> Obj:
        value = "True" if ok else "False"
        previous = self._conditions.get(kind)
        if previous is None or previous["status"] != value:
            previous = {"type": kind, "status": value, "lastTransitionTime": podutil.timestamp()}
            if reason and not ok:
                previous["reason"] = reason
            self._conditions[kind] = previous
        return {**previous, "lastProbeTime": None}

    def phase(self) -> str:
        if not self.initialized:
            if any(r.finished and not r.exited_ok() for r in self.init_runners):
                return "Failed"
            return "Pending"
        if not self.runners:
            return "Pending"
        if all(r.finished for r in self.runners):
            return "Succeeded" if all(r.exited_ok() for r in self.runners) else "Failed"
        if any(
            "running" in r.state or r.restart_count or "terminated" in r.state for r in self.runners
        ):
            return "Running"
        return "Pending"

    def status(self) -> Obj:
        runners = self.runners
        containers_ready = bool(runners) and all(r.ready for r in runners)
        statuses = [r.status() for r in runners]
        if not runners:
            reason = (
                "CreateContainerConfigError"
                if self.config_error
                else (
                    "PodInitializing"
                    if self.pod["spec"].get("initContainers")
                    else "ContainerCreating"
                )
            )
            waiting: dict[str, Any] = {"reason": reason}
            if self.config_error:
                waiting["message"] = self.config_error
            statuses = [
                {
                    "name": c["name"],
                    "image": c.get("image", ""),
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "started": False,
                    "state": {"waiting": waiting},
                }
                for c in self.pod["spec"].get("containers", [])
            ]
        status: dict[str, Any] = {
            "phase": self.phase(),
            "hostIP": self.node.node_address,
            "hostIPs": [{"ip": self.node.node_address}],
            "startTime": self.start_time,
            "qosClass": _qos_class(self.pod),
            "conditions": [
                self._condition("PodReadyToStartContainers", bool(self.pod_ip)),
                self._condition("Initialized", self.initialized, "ContainersNotInitialized"),
                self._condition("Ready", containers_ready, "ContainersNotReady"),
                self._condition("ContainersReady", containers_ready, "ContainersNotReady"),
                self._condition("PodScheduled", True),
            ],
            "containerStatuses": statuses,
        }
        if self.pod_ip:
            status["podIP"] = self.pod_ip
            status["podIPs"] = [{"ip": self.pod_ip}]
        if self.init_runners:
            status["initContainerStatuses"] = [r.status() for r in self.init_runners]
        return status

    async def _status_writer(self) -> None:
        while True:
            await self._dirty.wait()
            await asyncio.sleep(0.05)  # coalesce bursts of changes into one write
            self._dirty.clear()
            try:
                await self._flush_status()
            except Exception as error:
                if isinstance(error, ApiException) and error.status == 404:
                    self.gone = True  # the pod was deleted: nothing left to report to
                    return
                log.warning("pod %s: status write failed: %s", self.key, error)
                await asyncio.sleep(0.5)
                self._dirty.set()

    async def _flush_status(self) -> None:
        status = self.status()
        if status == self._last_written:
            return
        meta = self.pod["metadata"]
        await self.node.kube.patch(
            POD,
            meta["name"],
            {"status": status},
            meta["namespace"],
            status=True,
            content_type=MERGE_PATCH,
        )
        self._last_written = status


def _qos_class(pod: Obj) -> str:
    containers = pod["spec"].get("containers", [])
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        (r.get("limits") or {}).get(k)
        and (r.get("requests") or {}).get(k, (r.get("limits") or {}).get(k))
        == (r.get("limits") or {}).get(k)
        for r in resources
        for k in ("cpu", "memory")
    )
    return "Guaranteed" if guaranteed else "Burstable"
