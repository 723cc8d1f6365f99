"""What the resilience scenarios act on and read: a service's `fault` config section
(through its ConfigMap, as an operator would run a drill) and the callers' metrics on
their pods' admin ports."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from devcluster.runner.testing import ready_pods, wait_for

from ..cluster_system import NAMESPACE, System

ADMIN_PORT = 9091
GATEWAYS = ("admin-srv", "data-srv")
# How long a ConfigMap change takes at most to reach a pod's config (watch + reload).
CONFIG_TIMEOUT_S = 30.0
DRILL = "\n# reliability drill\n"


def _fault_lines(system: System, pod: str, text: str) -> int:
    log: str = system.node.core.read_namespaced_pod_log(pod, NAMESPACE, tail_lines=5000)
    return log.count(text)


def set_fault(system: System, service: str, fault: dict[str, Any] | None) -> None:
    """Put `fault` (None: none) at the end of the service's config.yaml, the rest kept as
    written, and wait until every pod it targets logs that fault injection turned on (or,
    for None, off). Turn a fault off before another: only off <-> on logs a line."""
    pods = [p.metadata.name for p in ready_pods(system.node.core, NAMESPACE, f"app={service}")]
    config_map = system.node.core.read_namespaced_config_map(service, NAMESPACE)
    written, _, drill = config_map.data["config.yaml"].partition(DRILL)
    was = yaml.safe_load(drill)["fault"] if drill else None
    if was == fault:
        return
    if fault is None:
        assert was is not None
        targets, text, new = was.get("pods") or pods, "fault injection off", written
    else:
        assert was is None, "turn the last fault off first"
        targets, text = fault.get("pods") or pods, "fault injection ON"
        new = written + DRILL + yaml.safe_dump({"fault": fault})
    before = {pod: _fault_lines(system, pod, text) for pod in targets}
    system.node.core.patch_namespaced_config_map(service, NAMESPACE, {"data": {"config.yaml": new}})
    wait_for(
        f"{service} pods {targets} to log {text!r}",
        lambda: all(_fault_lines(system, pod, text) > before[pod] for pod in targets),
        CONFIG_TIMEOUT_S,
        0.1,
    )


def pod_ips(system: System, service: str) -> dict[str, str]:
    """Name -> IP of the service's ready pods."""
    pods = ready_pods(system.node.core, NAMESPACE, f"app={service}")
    return {p.metadata.name: p.status.pod_ip for p in pods}


def gateway_ips(system: System) -> list[str]:
    return [ip for service in GATEWAYS for ip in pod_ips(system, service).values()]


def metric(ip: str, name: str, match: Callable[[dict[str, str]], bool]) -> float:
    """The sum of the samples of `name` on the pod at `ip` whose labels `match`."""
    text = httpx.get(f"http://{ip}:{ADMIN_PORT}/metrics", timeout=5).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and match(sample.labels):
                total += sample.value
    return total


def of_device_srv(labels: dict[str, str]) -> bool:
    return labels.get("service", "").endswith("device-srv")


def device_attempts(ips: list[str]) -> float:
    """Calls the callers sent to device-srv (each retry and hedge counts)."""
    return sum(metric(ip, "micro_client_requests_total", of_device_srv) for ip in ips)


def breaker_rejections(ips: list[str]) -> float:
    return sum(metric(ip, "micro_client_breaker_rejections_total", of_device_srv) for ip in ips)


def ejected_on(ip: str, target_ip: str) -> bool:
    """The caller at `ip` has ejected the device-srv instance at `target_ip`."""

    def endpoint(labels: dict[str, str]) -> bool:
        return of_device_srv(labels) and labels.get("endpoint", "").startswith(f"{target_ip}:")

    return metric(ip, "micro_client_endpoint_ejected", endpoint) > 0


def wait_ejected(
    ips: list[str], target_ip: str, since: float, timeout_s: float
) -> dict[str, float]:
    """Per caller IP, seconds from `since` until it was first seen ejecting `target_ip`
    (polled every 50 ms); a caller that did not within `timeout_s` is left out."""
    seen: dict[str, float] = {}
    end = since + timeout_s
    while len(seen) < len(ips) and time.monotonic() < end:
        for ip in ips:
            if ip not in seen and ejected_on(ip, target_ip):
                seen[ip] = round(time.monotonic() - since, 2)
        time.sleep(0.05)
    return seen
