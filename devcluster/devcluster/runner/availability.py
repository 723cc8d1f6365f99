"""Why Deployments are not available, read from the API as `kubectl describe` reads it.

For a Deployment that is not rolled out, the most telling of its pods that are not
ready says why: not scheduled (PodScheduled), a container that crashed (its
lastState.terminated, restartCount and last log lines through pods/log), waiting with
a reason (CreateContainerConfigError names the image or ConfigMap), failing its
readiness or startup probe (the probe, and the kubelet's last Unhealthy Event for the
container). It reads what a controller would: its caches (list and watch) of
Deployments, ReplicaSets, pods and Events, and pods/log for the last log lines.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from devcluster.runner import podutil
from devcluster.runner.events import container_field_path, last_seen
from devcluster.runner.informer import Informer, key_of
from devcluster.runner.kube import Kube, Obj

log = logging.getLogger(__name__)

POLL_S = 1.0
# Starting pods are normal for a while; a report before this much waiting is noise.
FIRST_REPORT_S = 5.0
SETTLE_S = 3.0
LOG_LINES = 5
LOG_LINE_CHARS = 300


def rolled_out(deployment: Obj) -> bool:
    """Every replica updated and available, as `kubectl rollout status` waits for."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    meta = deployment.get("metadata") or {}
    wanted = spec.get("replicas", 1)
    return bool(
        status.get("observedGeneration", 0) >= meta.get("generation", 1)
        and status.get("updatedReplicas", 0) == wanted
        and status.get("availableReplicas", 0) == wanted
        and status.get("replicas", 0) == wanted
    )


@dataclass(frozen=True)
class Finding:
    """Why one pod (or the Deployment itself) is not ready."""

    rank: int  # the most telling finding of a Deployment has the highest
    reason: str  # stable while nothing changes: what a new report is about
    detail: str = ""  # changes without being news (restart counts)
    problem: bool = False  # more than a pod still starting
    pod: str = ""
    container: str = ""
    init: bool = False
    show_log: bool = False
    previous_log: bool = False  # the crashed instance is the one before the running one

    def where(self) -> str:
        """`pod web-1, container app: ` or nothing, for a finding about the Deployment."""
        parts = [f"pod {self.pod}"] if self.pod else []
        if self.container:
            parts.append(f"{'init container' if self.init else 'container'} {self.container}")
        return ", ".join(parts) + ": " if parts else ""


# Ranks, most telling first.
CRASHING, FAILING, UNSCHEDULED, NOT_READY, STARTING, CREATING, ROLLING = 7, 6, 5, 4, 3, 2, 1
_STARTING_REASONS = {"ContainerCreating", "PodInitializing"}


def describe_probe(kind: str, probe: Obj) -> str:
    """A probe as `kubectl describe` shows it: `readinessProbe grpc :9090 service x`."""
    if "httpGet" in probe:
        action = probe["httpGet"]
        scheme = str(action.get("scheme", "HTTP")).lower()
        how = f"http-get {scheme}://:{action.get('port')}{action.get('path', '/')}"
    elif "tcpSocket" in probe:
        how = f"tcp-socket :{probe['tcpSocket'].get('port')}"
    elif "grpc" in probe:
        action = probe["grpc"]
        service = f" service {action['service']}" if action.get("service") else ""
        how = f"grpc :{action.get('port')}{service}"
    elif "exec" in probe:
        how = "exec " + " ".join(str(w) for w in probe["exec"].get("command") or [])
    else:
        how = "(no action)"
    return f"{kind}Probe {how}"


def _last_probe_failure(events: list[Obj], field_path: str, kind: str, since: str) -> str:
    """The message of the kubelet's latest `<Kind> probe failed` Event for a container
    since its current instance started (a pod's Events outlive a runner's restart)."""
    failed = [
        e
        for e in events
        if e.get("reason") == "Unhealthy"
        and (e.get("involvedObject") or {}).get("fieldPath") == field_path
        and str(e.get("message", "")).startswith(f"{kind} probe failed:")
        and last_seen(e) >= since
    ]
    if not failed:
        return ""
    latest = max(failed, key=lambda e: (last_seen(e), e["metadata"]["name"]))
    return str(latest.get("message", ""))


def _exit(terminated: Obj) -> str:
    text = f"exit code {terminated.get('exitCode')}"
    if terminated.get("reason"):
        text += f" ({terminated['reason']})"
    if terminated.get("message"):
        text += f": {terminated['message']}"
    return text


def explain_container(pod: Obj, spec: Obj, status: Obj, events: list[Obj], init: bool) -> Finding:
    """Why one container that is not ready is not."""
    name = spec["name"]
    base: dict[str, Any] = {"pod": pod["metadata"]["name"], "container": name, "init": init}
    state = status.get("state") or {}
    waiting = state.get("waiting") or {}
    last = (status.get("lastState") or {}).get("terminated") or {}
    restarts = int(status.get("restartCount", 0))
    if last and (waiting.get("reason") == "CrashLoopBackOff" or restarts):
        detail = f"restarted {restarts} times" if restarts != 1 else "restarted once"
        reason = f"crashed, last {_exit(last)}"
        running = "running" in state
        return Finding(CRASHING, reason, detail, True, show_log=True, previous_log=running, **base)
    if waiting and waiting.get("reason") not in _STARTING_REASONS:
        message = f": {waiting['message']}" if waiting.get("message") else ""
        return Finding(FAILING, f"{waiting.get('reason')}{message}", problem=True, **base)
    if "terminated" in state:
        terminated = state["terminated"]
        failed = terminated.get("exitCode") != 0
        return Finding(
            FAILING if failed else STARTING,
            f"exited, {_exit(terminated)}",
            problem=failed,
            show_log=failed,
            **base,
        )
    if "running" not in state:
        return Finding(CREATING, waiting.get("reason") or "being created", **base)
    if init:
        return Finding(STARTING, "running", **base)
    field_path = container_field_path(name, init)
    since = str(state["running"].get("startedAt") or "")
    if not status.get("started") and spec.get("startupProbe"):
        probe = describe_probe("startup", spec["startupProbe"])
        failure = _last_probe_failure(events, field_path, "Startup", since)
        why = f" ({failure})" if failure else ""
        return Finding(STARTING, f"running, {probe} not passed yet{why}", **base)
    probe_spec = spec.get("readinessProbe")
    if not probe_spec:
        return Finding(STARTING, "running, not ready yet", **base)
    probe = describe_probe("readiness", probe_spec)
    failure = _last_probe_failure(events, field_path, "Readiness", since)
    if failure:
        return Finding(NOT_READY, f"running, {probe} failing: {failure}", problem=True, **base)
    return Finding(STARTING, f"running, waiting for {probe}", **base)


def explain_pod(pod: Obj, events: list[Obj]) -> Finding:
    """Why a pod that is not ready is not: its most telling container, or its scheduling."""
    spec = pod.get("spec") or {}
    name = pod["metadata"]["name"]
    if not spec.get("nodeName"):
        scheduled = podutil.condition(pod, "PodScheduled") or {}
        if scheduled.get("status") == "False":
            reason = f"not scheduled: {scheduled.get('reason')}: {scheduled.get('message', '')}"
            return Finding(UNSCHEDULED, reason.rstrip(": "), problem=True, pod=name)
        scheduler = spec.get("schedulerName", "default-scheduler")
        if scheduler != "default-scheduler":
            reason = f"not scheduled: waiting for scheduler {scheduler!r}, which this node lacks"
            return Finding(UNSCHEDULED, reason, problem=True, pod=name)
        return Finding(CREATING, "not scheduled yet", pod=name)
    status = pod.get("status") or {}
    findings = []
    statuses = {s.get("name"): s for s in status.get("initContainerStatuses") or []}
    for container in spec.get("initContainers") or []:
        current = statuses.get(container["name"])
        terminated = ((current or {}).get("state") or {}).get("terminated") or {}
        if current is not None and terminated.get("exitCode") != 0:
            findings.append(explain_container(pod, container, current, events, init=True))
    statuses = {s.get("name"): s for s in status.get("containerStatuses") or []}
    for container in spec.get("containers") or []:
        current = statuses.get(container["name"])
        if current is not None and not current.get("ready"):
            findings.append(explain_container(pod, container, current, events, init=False))
    if not findings:
        return Finding(CREATING, "pending", pod=name)
    return max(findings, key=lambda f: f.rank)


def pods_of(deployment: Obj, replicasets: Informer, pods: Informer) -> list[Obj]:
    """The pods of a Deployment's ReplicaSets (ownerReferences), not being deleted."""
    namespace = deployment["metadata"]["namespace"]
    owned = {
        rs["metadata"]["uid"]
        for rs in replicasets.objects(namespace)
        if podutil.owner_uid(rs) == deployment["metadata"]["uid"]
    }
    return [
        pod
        for pod in pods.objects(namespace)
        if podutil.owner_uid(pod) in owned and not podutil.is_terminating(pod)
    ]


@dataclass(frozen=True)
class Report:
    """One Deployment that is not available, and why."""

    deployment: str
    available: int
    wanted: int
    finding: Finding
    log_lines: tuple[str, ...] = ()

    @property
    def news(self) -> tuple[str, str]:
        """What makes this report worth printing again: its pod's reason changed."""
        return (self.deployment, self.finding.reason)

    def lines(self) -> list[str]:
        found = self.finding
        detail = f"; {found.detail}" if found.detail else ""
        head = (
            f"deployment {self.deployment} not available ({self.available} of {self.wanted}"
            f" available): {found.where()}{found.reason}{detail}"
        )
        if not self.log_lines:
            return [head]
        return [f"{head}; its last log lines:", *(f"  | {line}" for line in self.log_lines)]


class AvailabilityReporter:
    """Says when every Deployment is available, and while some are not, which and why:
    FIRST_REPORT_S into the wait, then whenever a Deployment's reason changes; after the
    first problem of a wait, how to start again."""

    def __init__(
        self,
        kube: Kube,
        deployments: Informer,
        replicasets: Informer,
        pods: Informer,
        events: Informer,
        *,
        clean_start: str,
        say: Callable[[str], None],
    ) -> None:
        self.kube = kube
        self.deployments = deployments
        self.replicasets = replicasets
        self.pods = pods
        self.events = events
        self.clean_start = clean_start
        self.say = say

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        waiting_since: float | None = None  # since when some Deployment is not available
        available_since: float | None = None  # since when all are
        announced = False
        reported: dict[str, tuple[str, str]] = {}  # deployment -> the news last said
        troubled = False  # a problem was reported in this wait
        while True:
            await asyncio.sleep(POLL_S)
            deployments = self.deployments.objects()
            if not deployments:
                continue
            pending = [d for d in deployments if not rolled_out(d)]
            now = loop.time()
            if not pending:
                if available_since is None:
                    available_since = now
                # A crash-looping container without a readiness probe is ready for an
                # instant each run: after a problem, "available" must hold a while.
                if not announced and (not troubled or now - available_since >= SETTLE_S):
                    self.say(f"all {len(deployments)} deployments available")
                    announced, waiting_since, troubled = True, None, False
                    reported.clear()
                continue
            available_since = None
            if waiting_since is None or announced:
                waiting_since, announced = now, False
            if now - waiting_since < FIRST_REPORT_S:
                continue
            for report in [await self.report(d) for d in pending]:
                if reported.get(report.deployment) == report.news:
                    continue
                reported[report.deployment] = report.news
                if report.finding.show_log:
                    report = await self._with_log(report)
                for line in report.lines():
                    self.say(line)
                if report.finding.problem and not troubled:
                    self.say(self.clean_start)
                troubled = troubled or report.finding.problem

    async def report(self, deployment: Obj) -> Report:
        status = deployment.get("status") or {}
        wanted = int((deployment.get("spec") or {}).get("replicas", 1))
        key = key_of(deployment)
        available = int(status.get("availableReplicas", 0))
        findings = [
            (explain_pod(pod, self._events(pod)), pod["metadata"].get("creationTimestamp", ""))
            for pod in pods_of(deployment, self.replicasets, self.pods)
            if not podutil.is_ready(pod)
        ]
        if findings:
            # Of equally telling findings the newest pod's: during a rollout, the new
            # template's failure is the news, not the old one's that goes on.
            finding = max(findings, key=lambda found: (found[0].rank, found[1]))[0]
        else:
            updated = int(status.get("updatedReplicas", 0))
            finding = Finding(ROLLING, f"rolling out, {updated} of {wanted} pods updated")
        return Report(key, available, wanted, finding)

    def _events(self, pod: Obj) -> list[Obj]:
        meta = pod["metadata"]
        return [
            e
            for e in self.events.objects(meta["namespace"])
            if (e.get("involvedObject") or {}).get("uid") == meta["uid"]
        ]

    async def _with_log(self, report: Report) -> Report:
        found = report.finding
        namespace = report.deployment.split("/", 1)[0]
        try:
            text = await self.kube.pod_log(
                found.pod, namespace, found.container, LOG_LINES, previous=found.previous_log
            )
        except ApiException as error:
            log.debug("log of %s/%s: %s", found.pod, found.container, error.reason)
            return report
        lines = tuple(_clip(line) for line in text.splitlines() if line.strip())
        return Report(report.deployment, report.available, report.wanted, found, lines)


def _clip(line: str) -> str:
    line = line.rstrip()
    return line if len(line) <= LOG_LINE_CHARS else line[: LOG_LINE_CHARS - 3] + "..."
