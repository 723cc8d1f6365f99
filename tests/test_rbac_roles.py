"""RBAC in .k8s: namespaced Roles only, one per service, granting nothing beyond its needs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .conftest import OWN_SECRETS

NAMESPACE = "go-micro"

# The only rules any service may hold, as (apiGroup, resource) -> allowed verbs.
ALLOWED: dict[tuple[str, str], frozenset[str]] = {
    ("", "pods"): frozenset({"get", "list", "watch", "patch"}),
    ("discovery.k8s.io", "endpointslices"): frozenset({"list", "watch"}),
    ("", "configmaps"): frozenset({"get", "list", "watch"}),
    ("", "secrets"): frozenset({"get", "list", "watch"}),
}
# What the framework needs in every service: its registry, discovery and config.
REQUIRED = (("", "pods"), ("discovery.k8s.io", "endpointslices"), ("", "configmaps"))


def violations(role: dict[str, Any], service: str) -> list[str]:
    """Everything in `role` beyond what `service` may hold, or missing from it."""
    found: list[str] = []
    granted: dict[tuple[str, str], tuple[frozenset[str], frozenset[str]]] = {}
    for rule in role["rules"]:
        if "nonResourceURLs" in rule:
            found.append(f"non-resource rule {rule}")
        for field in ("apiGroups", "resources", "verbs", "resourceNames"):
            if "*" in (rule.get(field) or []):
                found.append(f"wildcard in {field}: {rule}")
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                key = (group, resource)
                if key in granted:
                    found.append(f"{key} granted by two rules")
                granted[key] = (
                    frozenset(rule["verbs"]),
                    frozenset(rule.get("resourceNames") or ()),
                )
    for key, (verbs, names) in granted.items():
        if key not in ALLOWED:
            found.append(f"{key} is not needed")
        elif verbs - ALLOWED[key]:
            found.append(f"{key}: verbs {sorted(verbs - ALLOWED[key])} are not needed")
        # An absent or empty resourceNames means every Secret.
        if key == ("", "secrets") and names != OWN_SECRETS[service]:
            found.append(
                f"secrets {sorted(names) or 'all'} instead of {sorted(OWN_SECRETS[service])}"
            )
        elif key != ("", "secrets") and names:
            found.append(f"{key}: resourceNames {sorted(names)} unexpected")
    if OWN_SECRETS[service] and ("", "secrets") not in granted:
        found.append(f"cannot read its own Secrets {sorted(OWN_SECRETS[service])}")
    for key in REQUIRED:
        if granted.get(key, (frozenset(),))[0] != ALLOWED[key]:
            found.append(f"lacks {key} {sorted(ALLOWED[key])}")
    return found


def test_no_cluster_scoped_rbac(k8s_documents: list[tuple[Path, dict[str, Any]]]) -> None:
    kinds = {d["kind"] for _, d in k8s_documents}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}


def test_each_service_runs_under_its_own_account(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    spec = k8s_objects[f"Deployment/{shipped_service}"]["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == shipped_service
    assert f"ServiceAccount/{shipped_service}" in k8s_objects


def test_role_binding_binds_only_its_own_role_to_its_own_account(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    binding = k8s_objects[f"RoleBinding/{shipped_service}"]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": shipped_service,
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "namespace": NAMESPACE, "name": shipped_service}
    ]


def test_one_role_and_binding_per_service(
    k8s_documents: list[tuple[Path, dict[str, Any]]],
) -> None:
    bindings = [d["metadata"]["name"] for _, d in k8s_documents if d["kind"] == "RoleBinding"]
    roles = [d["metadata"]["name"] for _, d in k8s_documents if d["kind"] == "Role"]
    assert sorted(bindings) == sorted(roles) == sorted(OWN_SECRETS)


def test_role_grants_exactly_what_the_service_needs(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    role = k8s_objects[f"Role/{shipped_service}"]
    assert role["metadata"]["namespace"] == NAMESPACE
    assert violations(role, shipped_service) == []


@pytest.mark.parametrize(
    ("rule", "reported"),
    [
        (
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
            "secrets all instead of",
        ),
        (
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": []},
            "secrets all instead of",
        ),
        (
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]},
            "('', 'pods'): verbs ['delete'] are not needed",
        ),
        ({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}, "wildcard in apiGroups"),
        (
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["create"]},
            "('', 'pods/exec') is not needed",
        ),
        (
            {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["update"]},
            "('', 'configmaps'): verbs ['update'] are not needed",
        ),
    ],
)
def test_the_check_refuses_broader_rules(
    k8s_objects: dict[str, dict[str, Any]], rule: dict[str, Any], reported: str
) -> None:
    """The check has teeth: each of these rules, added to a Role, is reported for what
    it grants, not only as a second rule for the same resource."""
    role = k8s_objects["Role/user-srv"]
    found = violations({**role, "rules": [*role["rules"], rule]}, "user-srv")
    assert any(reported in violation for violation in found), found


def test_the_check_refuses_a_missing_grant(k8s_objects: dict[str, dict[str, Any]]) -> None:
    role = k8s_objects["Role/token-srv"]
    kept = [r for r in role["rules"] if r["resources"] != ["secrets"]]
    found = violations({**role, "rules": kept}, "token-srv")
    assert any(v.startswith("cannot read its own Secrets") for v in found), found
