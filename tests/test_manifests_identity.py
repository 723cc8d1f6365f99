"""Caller identity in .k8s: each caller mounts one pod-bound token per service it calls,
for that callee's audience; each callee allows exactly the methods its callers call."""

from __future__ import annotations

import importlib
import re
from typing import Any

from .conftest import GRPC_CALLS, REPO_ROOT
from .test_manifests_contract import container_of, effective_config, pod_template

TOKEN_DIR = "/var/run/secrets/micro/identity"  # identity.token_dir's default
MIN_EXPIRATION_S = 600  # kube-apiserver refuses a shorter expirationSeconds


def callees(caller: str) -> set[str]:
    return {callee for source, callee in GRPC_CALLS if source == caller}


def token_sources(objects: dict[str, dict[str, Any]], service: str) -> list[dict[str, Any]]:
    volumes = pod_template(objects, service)["spec"]["volumes"]
    identity = [v for v in volumes if v["name"] == "identity"]
    if not identity:
        return []
    (volume,) = identity
    sources: list[dict[str, Any]] = volume["projected"]["sources"]
    assert all(set(s) == {"serviceAccountToken"} for s in sources), "tokens only"
    return [s["serviceAccountToken"] for s in sources]


def test_each_caller_mounts_exactly_one_token_per_callee(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    tokens = token_sources(k8s_objects, shipped_service)
    audiences = [t["audience"] for t in tokens]
    assert sorted(audiences) == sorted(f"go-micro.{c}" for c in callees(shipped_service))
    for token in tokens:
        # The file is named after the callee: the caller finds it by the registry name.
        assert token["path"] == token["audience"]
        assert token["expirationSeconds"] >= MIN_EXPIRATION_S
    mounts = [
        m for m in container_of(k8s_objects, shipped_service)["volumeMounts"]
        if m["name"] == "identity"
    ]  # fmt: skip
    if tokens:
        assert mounts == [{"name": "identity", "mountPath": TOKEN_DIR, "readOnly": True}]
    else:
        assert mounts == []


def test_the_call_graph_is_what_the_callers_call(shipped_service: str) -> None:
    """Least privilege holds only if GRPC_CALLS names every method a caller's adapters call
    and no other: read the stub calls out of the caller's code."""
    package = REPO_ROOT / shipped_service / shipped_service.replace("-", "_")
    called = {
        name
        for path in package.glob("*.py")
        for name in re.findall(r"self\._stub\.(\w+)\(", path.read_text())
    }
    listed = {
        method.rpartition("/")[2]
        for (caller, _), methods in GRPC_CALLS.items()
        if caller == shipped_service
        for method in methods
    }
    assert called == listed


def test_every_listed_method_exists() -> None:
    for (_, callee), methods in GRPC_CALLS.items():
        package = callee.replace("-", "_")
        short = package.removesuffix("_srv")
        module = importlib.import_module(f"api.{package}.v1.{short}_pb2")
        for method in methods:
            service, _, name = method.partition("/")
            descriptor = module.DESCRIPTOR.services_by_name[service.rpartition(".")[2]]
            assert descriptor.full_name == service
            assert name in descriptor.methods_by_name, method


def test_each_callee_allows_exactly_what_its_callers_call(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    identity = effective_config(k8s_objects, shipped_service).identity
    allowed = {
        (caller, method)
        for rule in identity.allow
        for caller in rule.callers
        for method in rule.methods
    }
    called = {
        (caller, method)
        for (caller, callee), methods in GRPC_CALLS.items()
        if callee == shipped_service
        for method in methods
    }
    assert allowed == called
    assert not any(m.endswith("/*") for _, m in allowed), "name each method: least privilege"


def test_only_the_public_edge_asks_no_identity(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    """admin-srv's gRPC port serves end users (their JWT); every other gRPC port is internal."""
    grpc = effective_config(k8s_objects, shipped_service).server.grpc
    if grpc is not None:
        assert grpc.public is (shipped_service == "admin-srv")


def test_the_pod_policy_covers_every_service_account(
    k8s_objects: dict[str, dict[str, Any]], shipped_service: str
) -> None:
    """The admission policy picks the services' accounts by name (<service>-srv in the
    namespace), so a new service is covered without editing it, and no other is."""
    policy = (REPO_ROOT / ".k8s" / "02-admission-policy.yaml").read_text()
    (pattern,) = re.findall(r"username\.matches\('([^']+)'\)", policy)
    account = pod_template(k8s_objects, shipped_service)["spec"]["serviceAccountName"]
    assert re.match(pattern, f"system:serviceaccount:go-micro:{account}")
    for other in ("default", "postgres", f"{account}-x-srv-controller"):
        assert not re.match(pattern, f"system:serviceaccount:go-micro:{other}")
    assert not re.match(pattern, f"system:serviceaccount:kube-system:{account}")
