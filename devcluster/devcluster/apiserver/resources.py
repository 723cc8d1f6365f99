"""The one table of served kinds: discovery, routing, storage and RBAC derive from it."""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    categories: tuple[str, ...] = ()
    # Pod-like field selectors beyond metadata.name / metadata.namespace.
    field_paths: dict[str, str] = field(default_factory=dict)
    # Kinds whose spec changes bump metadata.generation.
    has_generation: bool = False

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def key(self) -> tuple[str, str]:
        return (self.group, self.plural)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources


_POD_FIELDS = {
    "status.phase": "status.phase",
    "status.podIP": "status.podIP",
    "status.nominatedNodeName": "status.nominatedNodeName",
    "spec.nodeName": "spec.nodeName",
    "spec.serviceAccountName": "spec.serviceAccountName",
    "spec.restartPolicy": "spec.restartPolicy",
    "spec.schedulerName": "spec.schedulerName",
}
_EVENT_FIELDS = {
    f"involvedObject.{name}": f"involvedObject.{name}"
    for name in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
} | {"reason": "reason", "type": "type", "source": "source.component"}
_CREATE_ONLY = ("create",)

RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(
        "",
        "v1",
        "namespaces",
        "Namespace",
        False,
        ("status",),
        ("ns",),
        field_paths={"status.phase": "status.phase"},
    ),
    ResourceType(
        "",
        "v1",
        "nodes",
        "Node",
        False,
        ("status",),
        ("no",),
        field_paths={"spec.unschedulable": "spec.unschedulable"},
    ),
    ResourceType(
        "",
        "v1",
        "pods",
        "Pod",
        True,
        ("status", "log", "binding"),
        ("po",),
        categories=("all",),
        field_paths=_POD_FIELDS,
        has_generation=True,
    ),
    ResourceType("", "v1", "configmaps", "ConfigMap", True, (), ("cm",)),
    ResourceType("", "v1", "secrets", "Secret", True, field_paths={"type": "type"}),
    ResourceType("", "v1", "services", "Service", True, ("status",), ("svc",), categories=("all",)),
    ResourceType("", "v1", "serviceaccounts", "ServiceAccount", True, ("token",), ("sa",)),
    ResourceType("", "v1", "endpoints", "Endpoints", True, (), ("ep",)),
    ResourceType("", "v1", "events", "Event", True, (), ("ev",), field_paths=_EVENT_FIELDS),
    ResourceType(
        "apps",
        "v1",
        "deployments",
        "Deployment",
        True,
        ("status", "scale"),
        ("deploy",),
        categories=("all",),
        has_generation=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "replicasets",
        "ReplicaSet",
        True,
        ("status", "scale"),
        ("rs",),
        categories=("all",),
        field_paths={"status.replicas": "status.replicas"},
        has_generation=True,
    ),
    ResourceType(
        "apps",
        "v1",
        "statefulsets",
        "StatefulSet",
        True,
        ("status", "scale"),
        ("sts",),
        categories=("all",),
        has_generation=True,
    ),
    ResourceType("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    ResourceType("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    ResourceType(
        "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False
    ),
    ResourceType(
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        "NetworkPolicy",
        True,
        (),
        ("netpol",),
        has_generation=True,
    ),
    ResourceType(
        "policy",
        "v1",
        "poddisruptionbudgets",
        "PodDisruptionBudget",
        True,
        ("status",),
        ("pdb",),
        has_generation=True,
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicies",
        "ValidatingAdmissionPolicy",
        False,
        ("status",),
        categories=("api-extensions",),
        has_generation=True,
    ),
    ResourceType(
        "admissionregistration.k8s.io",
        "v1",
        "validatingadmissionpolicybindings",
        "ValidatingAdmissionPolicyBinding",
        False,
        categories=("api-extensions",),
        has_generation=True,
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        verbs=_CREATE_ONLY,
    ),
    ResourceType(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        False,
        verbs=_CREATE_ONLY,
    ),
)

# Kinds that are answered but never stored (reviews).
VIRTUAL = frozenset({"selfsubjectaccessreviews", "selfsubjectreviews"})

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KEY = {r.key: r for r in RESOURCES}


def lookup(group: str, version: str, plural: str) -> ResourceType | None:
    return _BY_PATH.get((group, version, plural))


def by_key(group: str, plural: str) -> ResourceType:
    return _BY_KEY[(group, plural)]


def group_versions() -> dict[str, list[str]]:
    """Each named group (core excluded) and its served versions, in table order."""
    groups: dict[str, list[str]] = {}
    for resource in RESOURCES:
        if resource.group and resource.version not in groups.setdefault(resource.group, []):
            groups[resource.group].append(resource.version)
    return groups


def resources_in(group: str, version: str) -> list[ResourceType]:
    return [r for r in RESOURCES if r.group == group and r.version == version]


# Subresource verbs, as kube-apiserver advertises them.
SUBRESOURCE_VERBS = {
    "status": ("get", "patch", "update"),
    "log": ("get",),
    "token": ("create",),
    "scale": ("get", "patch", "update"),
    "binding": ("create",),
}
