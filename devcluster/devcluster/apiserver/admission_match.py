"""Which requests a policy's matchConstraints or a binding's matchResources select, with
the rules of kube-apiserver's admission matcher: resource rules (operations, groups,
versions, resources with their subresources, resourceNames, scope), excluded rules,
and the namespace and object selectors.

Every kind here is served at one version, so matchPolicy Equivalent selects what Exact
does (there is no other version of a request to convert to)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from devcluster.apiserver.selectors import selector_from_object


@dataclass(frozen=True)
class Subject:
    """What a request writes, in the matcher's terms."""

    operation: str  # CREATE, UPDATE, DELETE
    group: str
    version: str
    resource: str
    subresource: str
    name: str
    namespaced: bool
    namespace_labels: Mapping[str, str] | None  # None: cluster-scoped (or no namespace)
    object_labels: tuple[Mapping[str, str], ...]  # of the object and of the old object


def _listed(values: Any, wanted: str) -> bool:
    return isinstance(values, list) and ("*" in values or wanted in values)


def _resource_listed(resources: Any, resource: str, subresource: str) -> bool:
    """ "pods" is the pods only, "pods/status" that subresource, "pods/*", "*/status",
    "*/*" and "*" (every resource, no subresource) as their patterns say."""
    if not isinstance(resources, list):
        return False
    for entry in resources:
        name, _, sub = str(entry).partition("/")
        if name not in ("*", resource):
            continue
        if sub == subresource or (sub == "*" and (subresource or name == "*")):
            return True
    return False


def rule_matches(rule: Mapping[str, Any], subject: Subject) -> bool:
    if not _listed(rule.get("operations"), subject.operation):
        return False
    if not _listed(rule.get("apiGroups"), subject.group):
        return False
    if not _listed(rule.get("apiVersions"), subject.version):
        return False
    if not _resource_listed(rule.get("resources"), subject.resource, subject.subresource):
        return False
    names = rule.get("resourceNames") or []
    if names and subject.name not in names:
        return False
    scope = rule.get("scope", "*")
    if scope == "Cluster":
        return not subject.namespaced
    if scope == "Namespaced":
        return subject.namespaced
    return True


def _selected(selector: Any, labels: Mapping[str, str]) -> bool:
    if not isinstance(selector, dict) or not selector:
        return True
    return selector_from_object(selector).matches(labels)


def resources_match(match: Mapping[str, Any], subject: Subject) -> bool:
    """A matchConstraints or matchResources: no resourceRules selects every resource (a
    binding narrowing nothing by kind)."""
    if subject.namespace_labels is not None and not _selected(
        match.get("namespaceSelector"), subject.namespace_labels
    ):
        return False
    selector = match.get("objectSelector")
    if not any(_selected(selector, labels) for labels in subject.object_labels):
        return False
    if any(rule_matches(rule, subject) for rule in match.get("excludeResourceRules") or []):
        return False
    rules = match.get("resourceRules") or []
    return not rules or any(rule_matches(rule, subject) for rule in rules)
