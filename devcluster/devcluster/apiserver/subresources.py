"""Subresources and reviews that are not plain storage: TokenRequest, pod binding,
SelfSubjectAccessReview and SelfSubjectReview."""

from __future__ import annotations

import copy
import datetime
from typing import Any

from devcluster.apiserver import status
from devcluster.apiserver.auth import (
    DEFAULT_TOKEN_SECONDS,
    ISSUER,
    MIN_TOKEN_SECONDS,
    Attributes,
    Authorizer,
    TokenAuthority,
    UserInfo,
)
from devcluster.apiserver.patch import MERGE_PATCH
from devcluster.apiserver.registry import Registry, now_rfc3339
from devcluster.apiserver.resources import ResourceType, by_key
from devcluster.apiserver.selectors import selector_from_object

MAX_TOKEN_SECONDS = 2**32


def request_token(
    registry: Registry, tokens: TokenAuthority, namespace: str, name: str, body: Any
) -> dict[str, Any]:
    """POST serviceaccounts/{name}/token: a signed token for the ServiceAccount."""
    if not isinstance(body, dict):
        raise status.bad_request("the body must be a TokenRequest")
    account = registry.get(by_key("", "serviceaccounts"), namespace, name).obj
    spec = dict(body.get("spec") or {})
    seconds = spec.get("expirationSeconds") or DEFAULT_TOKEN_SECONDS
    if not isinstance(seconds, int) or seconds < MIN_TOKEN_SECONDS:
        raise status.invalid(
            "TokenRequest",
            "authentication.k8s.io",
            name,
            [
                (
                    "spec.expirationSeconds",
                    f"Invalid value: {seconds}: may not specify a duration less than 10 minutes",
                )
            ],
        )
    seconds = min(seconds, MAX_TOKEN_SECONDS)
    bound: dict[str, Any] = {}
    reference = spec.get("boundObjectRef")
    if reference:
        kind, ref_name = reference.get("kind"), reference.get("name", "")
        plural = {"Pod": "pods", "Secret": "secrets"}.get(str(kind))
        if plural is None:
            raise status.invalid(
                "TokenRequest",
                "authentication.k8s.io",
                name,
                [
                    (
                        "spec.boundObjectRef.kind",
                        f'Unsupported value: "{kind}": supported values: "Pod", "Secret"',
                    )
                ],
            )
        target = registry.get(by_key("", plural), namespace, ref_name).obj
        uid = target["metadata"]["uid"]
        if reference.get("uid") and reference["uid"] != uid:
            raise status.ApiError(
                409,
                f"the UID in the bound object reference ({reference['uid']})"
                f" does not match the UID in record ({uid})",
                reason="Conflict",
            )
        bound[plural[:-1]] = {"name": ref_name, "uid": uid}
        spec["boundObjectRef"] = {**reference, "uid": uid}
    token, expires = tokens.issue(
        namespace,
        name,
        account["metadata"]["uid"],
        list(spec.get("audiences") or []),
        seconds,
        bound,
    )
    spec["expirationSeconds"] = seconds
    spec["audiences"] = list(spec.get("audiences") or [ISSUER])  # empty: the API's own
    expiry = datetime.datetime.fromtimestamp(expires, datetime.UTC)
    return {
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": None},
        "spec": spec,
        "status": {"token": token, "expirationTimestamp": expiry.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }


def bind_pod(registry: Registry, namespace: str, name: str, body: Any) -> dict[str, Any]:
    """POST pods/{name}/binding: what a scheduler does to place a pod on a node."""
    target = (body or {}).get("target") or {}
    node = target.get("name")
    if not node:
        raise status.invalid("Binding", "", name, [("target.name", "Required value")])
    pods = by_key("", "pods")
    pod = registry.get(pods, namespace, name).obj
    current = (pod.get("spec") or {}).get("nodeName")
    if current:
        raise status.ApiError(
            409,
            f'pod {name} is already assigned to node "{current}"',
            reason="Conflict",
            details={"name": name, "kind": "pods"},
        )
    if pod["metadata"].get("deletionTimestamp"):
        raise status.ApiError(
            409,
            f"pod {name} is being deleted, cannot be assigned to a host",
            reason="Conflict",
            details={"name": name, "kind": "pods"},
        )
    registry.store.put(pods.key, (namespace, name), _with_node(pod, node))
    return status.success_status({})


def _with_node(pod: dict[str, Any], node: str) -> dict[str, Any]:
    bound: dict[str, Any] = copy.deepcopy(pod)
    bound["spec"]["nodeName"] = node
    conditions = bound.setdefault("status", {}).setdefault("conditions", [])
    conditions[:] = [c for c in conditions if c.get("type") != "PodScheduled"]
    conditions.append(
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": now_rfc3339()}
    )
    return bound


def self_subject_access_review(authorizer: Authorizer, user: UserInfo, body: Any) -> dict[str, Any]:
    spec = (body or {}).get("spec") or {}
    resource = spec.get("resourceAttributes")
    non_resource = spec.get("nonResourceAttributes")
    if resource:
        attributes = Attributes(
            verb=resource.get("verb", ""),
            group=resource.get("group", ""),
            resource=resource.get("resource", ""),
            subresource=resource.get("subresource", ""),
            namespace=resource.get("namespace", ""),
            name=resource.get("name", ""),
        )
    elif non_resource:
        attributes = Attributes(
            verb=non_resource.get("verb", ""), path=non_resource.get("path", "")
        )
    else:
        raise status.invalid(
            "SelfSubjectAccessReview",
            "authorization.k8s.io",
            "",
            [
                (
                    "spec.resourceAttributes",
                    "Required value: exactly one of nonResourceAttributes or "
                    "resourceAttributes must be specified",
                )
            ],
        )
    allowed = authorizer.allowed(user, attributes)
    review: dict[str, Any] = {
        "kind": "SelfSubjectAccessReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {"allowed": allowed},
    }
    if allowed:
        review["status"]["reason"] = "allowed by RBAC"
    return review


def self_subject_review(user: UserInfo, body: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    if user.extra:
        info["extra"] = user.extra
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": info},
    }


def scale_of(workload: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale view of a Deployment or ReplicaSet."""
    metadata = workload["metadata"]
    spec = workload.get("spec") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            key: metadata[key]
            for key in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if key in metadata
        },
        "spec": {"replicas": spec.get("replicas", 1)},
        "status": {
            "replicas": (workload.get("status") or {}).get("replicas", 0),
            "selector": selector_from_object(spec.get("selector") or {}).text(),
        },
    }


def rescale(
    registry: Registry, resource: ResourceType, namespace: str, name: str, scale: Any
) -> dict[str, Any]:
    """PUT/PATCH .../scale: set spec.replicas, with the Scale's resourceVersion as the
    precondition."""
    replicas = ((scale or {}).get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or replicas < 0:
        raise status.invalid(
            "Scale",
            "autoscaling",
            name,
            [("spec.replicas", f"Invalid value: {replicas}: must be greater than or equal to 0")],
        )
    patch: dict[str, Any] = {"spec": {"replicas": replicas}}
    wanted = ((scale or {}).get("metadata") or {}).get("resourceVersion")
    if wanted:
        patch["metadata"] = {"resourceVersion": wanted}
    updated = registry.patch(resource, namespace, name, MERGE_PATCH, patch)
    return scale_of(updated)
