"""A thin dict-in, dict-out layer over the official `kubernetes` client.

Every component of the runner is a client of the API over HTTPS, like a real controller
or kubelet. The typed methods of the official client are used (found by name from the
kind, e.g. `patch_namespaced_replica_set_status`); bodies and answers stay plain dicts
so that controllers work on the JSON the server sends, and blocking calls run in a
worker thread so that the asyncio loop keeps running.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import kubernetes.client
from kubernetes.client.exceptions import ApiException

Obj = dict[str, Any]

MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

_API_CLASSES: dict[str, str] = {
    "v1": "CoreV1Api",
    "apps/v1": "AppsV1Api",
    "discovery.k8s.io/v1": "DiscoveryV1Api",
    "rbac.authorization.k8s.io/v1": "RbacAuthorizationV1Api",
    "networking.k8s.io/v1": "NetworkingV1Api",
    "policy/v1": "PolicyV1Api",
    "admissionregistration.k8s.io/v1": "AdmissionregistrationV1Api",
}
_CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "Node",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    }
)
# Kinds whose snake_case name in the client differs from the plain conversion.
_SNAKE_EXCEPTIONS = {"Endpoints": "endpoints"}


@dataclass(frozen=True)
class Kind:
    """An API kind as the typed client names it."""

    api_version: str
    kind: str

    @property
    def namespaced(self) -> bool:
        return self.kind not in _CLUSTER_SCOPED

    @property
    def snake(self) -> str:
        return (
            _SNAKE_EXCEPTIONS.get(self.kind) or re.sub(r"(?<!^)(?=[A-Z])", "_", self.kind).lower()
        )


POD = Kind("v1", "Pod")
NODE = Kind("v1", "Node")
SERVICE = Kind("v1", "Service")
CONFIGMAP = Kind("v1", "ConfigMap")
SECRET = Kind("v1", "Secret")
EVENT = Kind("v1", "Event")
NAMESPACE = Kind("v1", "Namespace")
DEPLOYMENT = Kind("apps/v1", "Deployment")
REPLICASET = Kind("apps/v1", "ReplicaSet")
ENDPOINTSLICE = Kind("discovery.k8s.io/v1", "EndpointSlice")


def kind_of(obj: Obj) -> Kind:
    """The Kind of a manifest; ValueError names an apiVersion this client cannot serve."""
    api_version = str(obj.get("apiVersion", ""))
    kind = str(obj.get("kind", ""))
    if api_version not in _API_CLASSES or not kind:
        raise ValueError(f"unsupported apiVersion/kind: {api_version!r}/{kind!r}")
    return Kind(api_version, kind)


class Kube:
    """Blocking and async access to the API with dict bodies and answers."""

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.api_client = api_client
        self._apis: dict[str, Any] = {}

    def _method(
        self, kind: Kind, verb: str, scope: str = "", suffix: str = ""
    ) -> Callable[..., Any]:
        api = self._apis.get(kind.api_version)
        if api is None:
            api = getattr(kubernetes.client, _API_CLASSES[kind.api_version])(self.api_client)
            self._apis[kind.api_version] = api
        if not kind.namespaced:
            name = f"{verb}_{kind.snake}"
        elif scope == "all":
            name = f"{verb}_{kind.snake}_for_all_namespaces"
        else:
            name = f"{verb}_namespaced_{kind.snake}"
        method: Callable[..., Any] = getattr(api, name + suffix)
        return method

    @staticmethod
    def _args(kind: Kind, namespace: str | None, *rest: Any) -> tuple[Any, ...]:
        return (*rest, namespace) if kind.namespaced else rest

    @staticmethod
    def _json(response: Any) -> Obj:
        try:
            data: Obj = json.loads(response.data)
            return data
        finally:
            response.release_conn()

    # blocking calls ----------------------------------------------------------------------

    def list_sync(self, kind: Kind, namespace: str | None = None, **query: Any) -> Obj:
        if kind.namespaced and namespace is None:
            call = self._method(kind, "list", "all")
            return self._json(call(_preload_content=False, **query))
        return self._json(
            self._method(kind, "list")(
                *self._args(kind, namespace), _preload_content=False, **query
            )
        )

    def watch_sync(
        self, kind: Kind, resource_version: str, timeout_seconds: int, **query: Any
    ) -> Iterator[Obj]:
        """Events of one watch request, until the server closes it."""
        call = self._method(kind, "list", "all" if kind.namespaced else "")
        response = call(
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            _request_timeout=(10, timeout_seconds + 30),
            **query,
        )
        try:
            buffer = b""
            for chunk in response.stream(amt=None, decode_content=False):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.release_conn()

    def get_sync(self, kind: Kind, name: str, namespace: str | None = None) -> Obj:
        call = self._method(kind, "read")
        return self._json(call(*self._args(kind, namespace, name), _preload_content=False))

    def pod_log_sync(
        self, name: str, namespace: str, container: str, tail_lines: int, previous: bool = False
    ) -> str:
        """The last lines a container printed (GET pods/log, as `kubectl logs --tail`);
        `previous`: those of its instance before the current one."""
        call = self._method(POD, "read", suffix="_log")
        response = call(
            name,
            namespace,
            container=container,
            tail_lines=tail_lines,
            previous=previous,
            _preload_content=False,
        )
        try:
            return str(response.data.decode(errors="replace"))
        finally:
            response.release_conn()

    def create_sync(self, kind: Kind, body: Obj, namespace: str | None = None) -> Obj:
        call = self._method(kind, "create")
        return self._json(call(*self._args(kind, namespace), body, _preload_content=False))

    def patch_sync(
        self,
        kind: Kind,
        name: str,
        body: Obj,
        namespace: str | None = None,
        *,
        status: bool = False,
        content_type: str = STRATEGIC_MERGE_PATCH,
    ) -> Obj:
        call = self._method(kind, "patch", suffix="_status" if status else "")
        return self._json(
            call(
                *self._args(kind, namespace, name),
                body,
                _content_type=content_type,
                _preload_content=False,
            )
        )

    def delete_sync(
        self,
        kind: Kind,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
        propagation: str | None = None,
    ) -> bool:
        """Delete the object; False when it was gone already: not found, or (with `uid`)
        the name now belongs to another object, which the server answers with 409."""
        options: Obj = {}
        if uid:
            options["preconditions"] = {"uid": uid}
        if propagation:
            options["propagationPolicy"] = propagation
        if grace_period_seconds is not None:
            options["gracePeriodSeconds"] = grace_period_seconds
        call = self._method(kind, "delete")
        try:
            response = call(
                *self._args(kind, namespace, name),
                grace_period_seconds=grace_period_seconds,
                body=options or None,
                _preload_content=False,
            )
        except ApiException as error:
            if error.status == 404 or (uid and error.status == 409):
                return False
            raise
        response.release_conn()
        return True

    # async wrappers ------------------------------------------------------------------------

    async def get(self, kind: Kind, name: str, namespace: str | None = None) -> Obj:
        return await asyncio.to_thread(self.get_sync, kind, name, namespace)

    async def pod_log(
        self, name: str, namespace: str, container: str, tail_lines: int, previous: bool = False
    ) -> str:
        return await asyncio.to_thread(
            self.pod_log_sync, name, namespace, container, tail_lines, previous
        )

    async def create(self, kind: Kind, body: Obj, namespace: str | None = None) -> Obj:
        return await asyncio.to_thread(self.create_sync, kind, body, namespace)

    async def patch(
        self,
        kind: Kind,
        name: str,
        body: Obj,
        namespace: str | None = None,
        *,
        status: bool = False,
        content_type: str = STRATEGIC_MERGE_PATCH,
    ) -> Obj:
        return await asyncio.to_thread(
            lambda: self.patch_sync(
                kind, name, body, namespace, status=status, content_type=content_type
            )
        )

    async def delete(
        self,
        kind: Kind,
        name: str,
        namespace: str | None = None,
        *,
        grace_period_seconds: int | None = None,
        uid: str | None = None,
        propagation: str | None = None,
    ) -> bool:
        return await asyncio.to_thread(
            lambda: self.delete_sync(
                kind,
                name,
                namespace,
                grace_period_seconds=grace_period_seconds,
                uid=uid,
                propagation=propagation,
            )
        )
