"""Per-kind behaviour (defaults, validation, allocation), like kube-apiserver's strategies.

Everything generic (metadata, versions, preconditions) is in the registry; a strategy
only says what is special about its kind.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import itertools
from typing import Any

from devcluster.apiserver.admission_validation import (
    binding_causes,
    default_binding,
    default_policy,
    policy_causes,
)
from devcluster.apiserver.selectors import selector_from_object, selector_object_causes
from devcluster.apiserver.status import ApiError
from devcluster.apiserver.store import Obj, Store
from devcluster.apiserver.validation import Causes

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/16")
NODE_PORTS = range(30000, 32768)
# As kube-apiserver's static subranges: automatic allocation takes from above the first
# min(max(16, size/32), 128) node ports and min(max(16, size/16), 256) addresses first,
# leaving those to Services that ask for a fixed port or clusterIP.
NODE_PORT_STATIC_BAND = min(max(16, len(NODE_PORTS) // 32), 128)
CLUSTER_IP_STATIC_BAND = min(max(16, SERVICE_CIDR.num_addresses // 16), 256)


class Strategy:
    def prepare_for_create(self, obj: Obj, store: Store) -> None:
        """Defaults applied once, on create."""

    def prepare_for_update(self, new: Obj, old: Obj, store: Store) -> None:
        """Carry over what an update may not change or may omit."""

    def validate(self, obj: Obj, old: Obj | None, store: Store) -> Causes:
        return []


PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def _default_probe(probe: Obj) -> None:
    """kube-apiserver's probe defaults (kubectl describe dereferences some of them)."""
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    if isinstance(probe.get("httpGet"), dict):
        probe["httpGet"].setdefault("path", "/")
        probe["httpGet"].setdefault("scheme", "HTTP")
    if isinstance(probe.get("grpc"), dict):
        probe["grpc"].setdefault("service", "")


class PodStrategy(Strategy):
    def prepare_for_create(self, obj: Obj, store: Store) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("restartPolicy", "Always")
        spec.setdefault("terminationGracePeriodSeconds", 30)
        spec.setdefault("dnsPolicy", "ClusterFirst")
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("securityContext", {})
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("priority", 0)
        for field in ("containers", "initContainers"):
            for container in spec.get(field) or []:
                if not isinstance(container, dict):
                    continue
                image = str(container.get("image", ""))
                latest = ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest")
                container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
                container.setdefault("terminationMessagePath", "/dev/termination-log")
                container.setdefault("terminationMessagePolicy", "File")
                container.setdefault("resources", {})
                for port in container.get("ports") or []:
                    if isinstance(port, dict):
                        port.setdefault("protocol", "TCP")
                for probe in PROBES:
                    if isinstance(container.get(probe), dict):
                        _default_probe(container[probe])
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}

    def validate(self, obj: Obj, old: Obj | None, store: Store) -> Causes:
        spec = obj.get("spec") or {}
        containers = spec.get("containers")
        causes: Causes = []
        if not containers:
            return [("spec.containers", "Required value")]
        seen: set[str] = set()
        for index, container in enumerate(containers):
            if not isinstance(container, dict):
                causes.append((f"spec.containers[{index}]", "Invalid value: must be an object"))
                continue
            name = container.get("name")
            if not name:
                causes.append((f"spec.containers[{index}].name", "Required value"))
            elif name in seen:
                causes.append((f"spec.containers[{index}].name", f'Duplicate value: "{name}"'))
            seen.add(str(name))
            if not container.get("image") and old is None:
                causes.append((f"spec.containers[{index}].image", "Required value"))
        if old is not None and _pod_spec_changed(old.get("spec") or {}, spec):
            causes.append(
                (
                    "spec",
                    "Forbidden: pod updates may not change fields other than "
                    "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                    "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                    "it was previously negative)",
                )
            )
        return causes


def _pod_spec_changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """True when an update touches a pod spec field that is immutable."""

    def mutable_removed(spec: dict[str, Any]) -> dict[str, Any]:
        spec = copy.deepcopy(spec)
        for field in ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds"):
            spec.pop(field, None)
        for field in ("containers", "initContainers"):
            for container in spec.get(field) or []:
                if isinstance(container, dict):
                    container.pop("image", None)
        return spec

    return mutable_removed(old) != mutable_removed(new)


class NamespaceStrategy(Strategy):
    def prepare_for_create(self, obj: Obj, store: Store) -> None:
        name = obj["metadata"]["name"]
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj["spec"] = {"finalizers": ["kubernetes"]}
        obj["status"] = {"phase": "Active"}

    def prepare_for_update(self, new: Obj, old: Obj, store: Store) -> None:
        new["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = old["metadata"][
            "name"
        ]
        new["spec"] = copy.deepcopy(old.get("spec", {}))


def immutable_data_causes(obj: Obj, old: Obj | None) -> Causes:
    """ConfigMaps and Secrets marked `immutable: true` keep their data and the mark."""
    if old is None or not old.get("immutable"):
        return []
    causes: Causes = []
    if not obj.get("immutable"):
        causes.append(("immutable", "Forbidden: field is immutable when `immutable` is set"))
    for field in ("data", "binaryData"):
        if obj.get(field) != old.get(field):
            causes.append((field, "Forbidden: field is immutable when `immutable` is set"))
    return causes


class ConfigMapStrategy(Strategy):
    def validate(self, obj: Obj, old: Obj | None, store: Store) -> Causes:
        return immutable_data_causes(obj, old)


class SecretStrategy(Strategy):
    def prepare_for_create(self, obj: Obj, store: Store) -> None:
        obj.setdefault("type", "Opaque")
        self._fold_string_data(obj)

    def prepare_for_update(self, new: Obj, old: Obj, store: Store) -> None:
        self._fold_string_data(new)

    @staticmethod
    def _fold_string_data(obj: Obj) -> None:
        string_data = obj.pop("stringData", None) or {}
        if string_data:
            data = obj.setdefault("data", {})
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()

    def validate(self, obj: Obj, old: Obj | None, store: Store) -> Causes:
        if old is not None and old.get("type") != obj.get("type"):
            return [("type", f'Invalid value: "{obj.get("type")}": field is immutable')]
        return immutable_data_causes(obj, old)


class ServiceStrategy(Strategy):
    """Allocates clusterIP and nodePorts from what other Services already hold."""

    def prepare_for_create(self, obj: Obj, store: Store) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        if spec["type"] in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        obj["status"] = {"loadBalancer": {}}

    def prepare_for_update(self, new: Obj, old: Obj, store: Store) -> None:
        spec, previous = new.setdefault("spec", {}), old.get("spec", {})
        # As kube-apiserver's patchAllocatedValues: an update may omit allocated values.
        if not spec.get("clusterIP") and previous.get("clusterIP"):
            spec["clusterIP"] = previous["clusterIP"]
            spec["clusterIPs"] = previous.get("clusterIPs", [previous["clusterIP"]])
        old_ports = {p.get("port"): p for p in previous.get("ports") or []}
        needs_node_ports = spec.get("type", "ClusterIP") in ("NodePort", "LoadBalancer")
        for port in spec.get("ports") or []:
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
                earlier = old_ports.get(port.get("port")) or {}
                if needs_node_ports and "nodePort" not in port and "nodePort" in earlier:
                    port["nodePort"] = earlier["nodePort"]
                elif not needs_node_ports and port.get("nodePort") == earlier.get("nodePort"):
                    # Leaving NodePort releases the ports the update did not ask for.
                    port.pop("nodePort", None)

    def validate(self, obj: Obj, old: Obj | None, store: Store) -> Causes:
        spec = obj.get("spec") or {}
        causes: Causes = []
        service_type = spec.get("type", "ClusterIP")
        if service_type not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            return [
                (
                    "spec.type",
                    f'Unsupported value: "{service_type}": supported values: '
                    '"ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
                )
            ]
        ports = spec.get("ports") or []
        headless = spec.get("clusterIP") == "None"
        if not ports and not headless and service_type != "ExternalName":
            causes.append(("spec.ports", "Required value"))
        key = (obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        used_ips, used_ports = self._allocated(store, exclude=key)
        causes += self._allocate_ip(spec, used_ips, old)
        causes += self._allocate_node_ports(spec, used_ports, service_type)
        return causes

    @staticmethod
    def _allocated(store: Store, exclude: tuple[str, str]) -> tuple[set[str], set[int]]:
        ips: set[str] = set()
        ports: set[int] = set()
        for entry in store.entries(("", "services")):
            metadata = entry.obj["metadata"]
            if (metadata.get("namespace", ""), metadata["name"]) == exclude:
                continue
            spec = entry.obj.get("spec", {})
            ips.update(spec.get("clusterIPs") or [spec.get("clusterIP", "")])
            ports.update(p["nodePort"] for p in spec.get("ports") or [] if "nodePort" in p)
        return ips, ports

    @staticmethod
    def _allocate_ip(spec: dict[str, Any], used: set[str], old: Obj | None) -> Causes:
        if spec.get("type") == "ExternalName" or spec.get("clusterIP") == "None":
            if spec.get("clusterIP") == "None":
                spec["clusterIPs"] = ["None"]
            return []
        wanted = spec.get("clusterIP")
        if old is not None:
            before = (old.get("spec") or {}).get("clusterIP")
            if wanted != before:
                return [
                    ("spec.clusterIPs[0]", f'Invalid value: ["{wanted}"]: may not change once set')
                ]
            return []
        if wanted:
            try:
                address = ipaddress.ip_address(wanted)
            except ValueError:
                return [("spec.clusterIPs", f'Invalid value: ["{wanted}"]: must be a valid IP')]
            if address not in SERVICE_CIDR:
                return [
                    (
                        "spec.clusterIPs",
                        f'Invalid value: ["{wanted}"]: failed to allocate '
                        f"IP {wanted}: the provided IP ({wanted}) is not in the valid range. "
                        f"The range of valid IPs is {SERVICE_CIDR}",
                    )
                ]
            if wanted in used:
                return [
                    (
                        "spec.clusterIPs",
                        f'Invalid value: ["{wanted}"]: failed to allocate '
                        f"IP {wanted}: provided IP is already allocated",
                    )
                ]
        else:
            wanted = _first_free_address(used)
        spec["clusterIP"] = wanted
        spec["clusterIPs"] = [wanted]
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        return []

    @staticmethod
    def _allocate_node_ports(spec: dict[str, Any], used: set[int], service_type: str) -> Causes:
        ports = [p for p in spec.get("ports") or [] if isinstance(p, dict)]
        if service_type not in ("NodePort", "LoadBalancer"):
            for index, port in enumerate(ports):
                if "nodePort" in port:
                    return [
                        (
                            f"spec.ports[{index}].nodePort",
                            "Forbidden: may not be used when `type` is 'ClusterIP'",
                        )
                    ]
            return []
        causes: Causes = []
        taken = set(used)
        for index, port in enumerate(ports):
            wanted = port.get("nodePort")
            if wanted is None:
                continue
            if not isinstance(wanted, int) or wanted not in NODE_PORTS:
                causes.append(
                    (
                        f"spec.ports[{index}].nodePort",
                        f"Invalid value: {wanted}: "
                        "provided port is not in the valid range. The range of valid "
                        "ports is 30000-32767",
                    )
                )
            elif wanted in taken:
                causes.append(
                    (
                        f"spec.ports[{index}].nodePort",
                        f"Invalid value: {wanted}: provided port is already allocated",
                    )
                )
            taken.add(wanted) if isinstance(wanted, int) else None
        if causes:
            return causes
        upper = NODE_PORTS[NODE_PORT_STATIC_BAND:]
        lower = NODE_PORTS[:NODE_PORT_STATIC_BAND]
        free = (port for band in (upper, lower) for port in band if port not in taken)
        for port in ports:
            if "nodePort" not in port:
                port["nodePort"] = next(free)
        return []


def _first_free_address(used: set[str]) -> str:
    base = int(SERVICE_CIDR.network_address)
    last = int(SERVICE_CIDR.broadcast_address)
    upper = range(base + CLUSTER_IP_STATIC_BAND, last)
    lower = range(base + 1, base + CLUSTER_IP_STATIC_BAND)
    for number in itertools.chain(upper, lower):
        address = str(ipaddress.ip_address(number))
        if address not in used:
            return address
    raise ApiError(500, "Internal error occurred: failed to allocate a serviceIP: range is full")


class WorkloadStrategy(Strategy):
    """Deployments, ReplicaSets and StatefulSets: replicas default, the selector must
    match the template."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def prepare_for_create(self, obj: Obj, store: Store) -> None:
        spec = obj.setdefault("spec", {})
        spec.setdefault("replicas", 1)
        if self.kind == "StatefulSet":
            spec.setdefault("podManagementPolicy", "OrderedReady")
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault(
                "updateStrategy", {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}
            )
        if self.kind == "Deployment":
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault(
                "strategy",
                {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                },
            )
        obj["status"] = {}

    def validate(self, obj: Obj, old: Obj | None, store: Store) -> Causes:
        spec = obj.get("spec") or {}
        selector = spec.get("selector")
        if not isinstance(selector, dict) or not (
            selector.get("matchLabels") or selector.get("matchExpressions")
        ):
            return [("spec.selector", "Required value")]
        causes = selector_object_causes(selector, "spec.selector")
        if causes:
            return causes
        labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        if not selector_from_object(selector).matches(labels):
            return [
                (
                    "spec.template.metadata.labels",
                    f"Invalid value: {labels}: `selector` does not match template `labels`",
                )
            ]
        if old is not None and (old.get("spec") or {}).get("selector") != selector:
            return [("spec.selector", f"Invalid value: {selector}: field is immutable")]
        return []


class AdmissionPolicyStrategy(Strategy):
    """ValidatingAdmissionPolicy: defaults, and every expression compiles."""

    def prepare_for_create(self, obj: Obj, store: Store) -> None:
        default_policy(obj)
        obj["status"] = {}

    def prepare_for_update(self, new: Obj, old: Obj, store: Store) -> None:
        default_policy(new)

    def validate(self, obj: Obj, old: Obj | None, store: Store) -> Causes:
        return policy_causes(obj)


class AdmissionBindingStrategy(Strategy):
    def prepare_for_create(self, obj: Obj, store: Store) -> None:
        default_binding(obj)

    def prepare_for_update(self, new: Obj, old: Obj, store: Store) -> None:
        default_binding(new)

    def validate(self, obj: Obj, old: Obj | None, store: Store) -> Causes:
        return binding_causes(obj)


STRATEGIES: dict[str, Strategy] = {
    "validatingadmissionpolicies": AdmissionPolicyStrategy(),
    "validatingadmissionpolicybindings": AdmissionBindingStrategy(),
    "pods": PodStrategy(),
    "namespaces": NamespaceStrategy(),
    "configmaps": ConfigMapStrategy(),
    "secrets": SecretStrategy(),
    "services": ServiceStrategy(),
    "deployments": WorkloadStrategy("Deployment"),
    "replicasets": WorkloadStrategy("ReplicaSet"),
    "statefulsets": WorkloadStrategy("StatefulSet"),
}
_DEFAULT = Strategy()


def strategy_for(plural: str) -> Strategy:
    return STRATEGIES.get(plural, _DEFAULT)
