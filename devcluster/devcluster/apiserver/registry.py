"""The verbs with kube-apiserver's semantics, generic over every served kind."""

from __future__ import annotations

import base64
import binascii
import copy
import datetime
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from devcluster.apiserver import status
from devcluster.apiserver.admission import Admit
from devcluster.apiserver.kinds import strategy_for
from devcluster.apiserver.patch import apply_patch
from devcluster.apiserver.resources import ResourceType, by_key
from devcluster.apiserver.selectors import FieldSelector, LabelSelector
from devcluster.apiserver.status import ApiError
from devcluster.apiserver.store import Entry, Obj, Store
from devcluster.apiserver.validation import metadata_causes, name_causes

NAMESPACES = ("", "namespaces")
_NAME_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Fields the API server owns: a client can neither set nor change them.
_SERVER_METADATA = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
)
# Kinds whose DELETE answers the object rather than a Status (as kube-apiserver).
_RETURNS_DELETED_OBJECT = {"pods", "services", "namespaces"}
_UNDELETABLE_NAMESPACES = {"default", "kube-system", "kube-public"}


def now_rfc3339(offset_seconds: int = 0) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset_seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ListPage:
    entries: list[Entry]
    resource_version: int
    continue_token: str
    remaining: int | None


@dataclass
class DeleteResult:
    obj: Obj
    removed: bool  # False while finalizers or a grace period keep the object


def _encode_continue(rv: int, start: tuple[str, str]) -> str:
    token = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": "/".join(start)})
    return base64.urlsafe_b64encode(token.encode()).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        namespace, _, name = str(data["start"]).partition("/")
        return int(data["rv"]), (namespace, name)
    except (ValueError, KeyError, binascii.Error, json.JSONDecodeError) as error:
        raise status.bad_request(f"invalid continue token: {error}") from error


class Registry:
    def __init__(self, store: Store) -> None:
        self.store = store

    # reads -----------------------------------------------------------------------------

    def key(self, resource: ResourceType, namespace: str, name: str) -> tuple[str, str]:
        return (namespace if resource.namespaced else "", name)

    def get(self, resource: ResourceType, namespace: str, name: str) -> Entry:
        entry = self.store.get(resource.key, self.key(resource, namespace, name))
        if entry is None:
            raise status.not_found(resource.group, resource.plural, name)
        return entry

    def list_page(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        limit: int = 0,
        continue_token: str = "",
    ) -> ListPage:
        entries = self.store.entries(resource.key, namespace if resource.namespaced else None)
        rv = self.store.rv
        if continue_token:
            rv, start = _decode_continue(continue_token)
            entries = [e for e in entries if _entry_key(e) > start]
        if not labels.empty or not fields.empty:
            entries = [
                e
                for e in entries
                if labels.matches(e.obj["metadata"].get("labels")) and fields.matches(e.obj)
            ]
        if limit and len(entries) > limit:
            page = entries[:limit]
            return ListPage(
                page, rv, _encode_continue(rv, _entry_key(page[-1])), len(entries) - limit
            )
        return ListPage(entries, rv, "", None)

    def require_namespace(
        self,
        resource: ResourceType,
        namespace: str,
        *,
        creating: bool,
        kind_plural: str = "",
        name: str = "",
    ) -> None:
        if not resource.namespaced:
            return
        entry = self.store.get(NAMESPACES, ("", namespace))
        if entry is None:
            raise status.not_found("", "namespaces", namespace)
        if creating and entry.obj["metadata"].get("deletionTimestamp"):
            raise ApiError(
                403,
                f'{_qualified(resource)} "{name}" is forbidden: unable to create new content '
                f"in namespace {namespace} because it is being terminated",
                details={"name": name, "kind": resource.plural},
            )

    # create ----------------------------------------------------------------------------

    def create(
        self,
        resource: ResourceType,
        namespace: str,
        body: Any,
        *,
        dry_run: bool = False,
        admit: Admit | None = None,
    ) -> Obj:
        obj = self._check_body(resource, body)
        metadata = obj.setdefault("metadata", {})
        if resource.namespaced:
            if metadata.get("namespace") and metadata["namespace"] != namespace:
                raise status.bad_request(
                    "the namespace of the provided object does not match the namespace sent "
                    "on the request"
                )
            metadata["namespace"] = namespace
        else:
            metadata.pop("namespace", None)
        if metadata.get("resourceVersion"):
            raise status.bad_request("resourceVersion should not be set on objects to be created")
        generate = metadata.get("generateName")
        if not metadata.get("name") and generate:
            metadata["name"] = self._generated_name(resource, namespace, generate)
        name = metadata.get("name") or ""
        if not name:
            raise status.invalid(
                resource.kind,
                resource.group,
                "",
                [("metadata.name", "Required value: name or generateName is required")],
            )
        self.require_namespace(resource, namespace, creating=True, name=name)
        for field in _SERVER_METADATA:
            metadata.pop(field, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["creationTimestamp"] = now_rfc3339()
        if resource.has_generation:
            metadata["generation"] = 1
        strategy = strategy_for(resource.plural)
        strategy.prepare_for_create(obj, self.store)
        causes = name_causes(resource.plural, name) + metadata_causes(metadata)
        if not causes:
            causes = strategy.validate(obj, None, self.store)
        if causes:
            raise status.invalid(resource.kind, resource.group, name, causes)
        key = self.key(resource, namespace, name)
        if self.store.get(resource.key, key) is not None:
            raise status.already_exists(resource.group, resource.plural, name)
        if admit is not None:
            admit(obj, None)
        if dry_run:
            return obj
        self.store.put(resource.key, key, obj)
        if resource.plural == "namespaces":
            self._create_default_service_account(name)
        return obj

    def _create_default_service_account(self, namespace: str) -> None:
        # What the ServiceAccount controller does in a real cluster.
        accounts = by_key("", "serviceaccounts")
        if self.store.get(accounts.key, (namespace, "default")) is None:
            self.create(
                accounts,
                namespace,
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
            )

    def _generated_name(self, resource: ResourceType, namespace: str, prefix: str) -> str:
        for _ in range(8):
            suffix = "".join(secrets.choice(_NAME_SUFFIX_ALPHABET) for _ in range(5))
            name = f"{prefix[:58]}{suffix}"
            if self.store.get(resource.key, self.key(resource, namespace, name)) is None:
                return name
        raise ApiError(500, f"could not generate a unique name with prefix {prefix}")

    def _check_body(self, resource: ResourceType, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise status.bad_request("the body of the request must be a JSON object")
        obj: Obj = copy.deepcopy(body)
        kind = obj.setdefault("kind", resource.kind)
        api_version = obj.setdefault("apiVersion", resource.api_version)
        if api_version != resource.api_version:
            raise status.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({resource.api_version})"
            )
        if kind != resource.kind:
            raise status.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({resource.kind})"
            )
        if not isinstance(obj.get("metadata", {}), dict):
            raise status.bad_request("metadata must be a JSON object")
        return obj

    # update and patch ------------------------------------------------------------------

    def update(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        subresource: str = "",
        *,
        dry_run: bool = False,
        admit: Admit | None = None,
    ) -> Obj:
        new = self._check_body(resource, body)
        metadata = new.setdefault("metadata", {})
        if metadata.get("name", name) != name:
            raise status.bad_request(
                f"the name of the object ({metadata.get('name')}) does not match the name on "
                f"the URL ({name})"
            )
        if resource.namespaced and metadata.get("namespace", namespace) != namespace:
            raise status.bad_request(
                "the namespace of the provided object does not match the namespace sent on "
                "the request"
            )
        self.require_namespace(resource, namespace, creating=False)
        entry = self.get(resource, namespace, name)
        return self._replace(resource, entry, new, subresource, dry_run=dry_run, admit=admit)

    def patch(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        content_type: str,
        body: Any,
        subresource: str = "",
        *,
        dry_run: bool = False,
        admit: Admit | None = None,
    ) -> Obj:
        self.require_namespace(resource, namespace, creating=False)
        entry = self.get(resource, namespace, name)
        patched = apply_patch(content_type, json.loads(entry.raw), body)
        if not isinstance(patched, dict):
            raise status.bad_request("the patched object is not a JSON object")
        new = self._check_body(resource, patched)
        metadata = new.setdefault("metadata", {})
        if metadata.get("name") != name:
            raise status.bad_request("metadata.name may not be changed by a patch")
        return self._replace(resource, entry, new, subresource, dry_run=dry_run, admit=admit)

    def _replace(
        self,
        resource: ResourceType,
        entry: Entry,
        new: Obj,
        subresource: str,
        *,
        dry_run: bool,
        admit: Admit | None,
    ) -> Obj:
        old = entry.obj
        old_meta, metadata = old["metadata"], new.setdefault("metadata", {})
        name = old_meta["name"]
        wanted_rv = metadata.get("resourceVersion")
        if wanted_rv and wanted_rv != old_meta["resourceVersion"]:
            raise status.conflict(resource.group, resource.plural, name)
        for field in _SERVER_METADATA:
            if field in old_meta:
                metadata[field] = old_meta[field]
            else:
                metadata.pop(field, None)
        if resource.namespaced:
            metadata["namespace"] = old_meta["namespace"]
        if subresource == "status":
            # A status write changes status only (metav1.ResetObjectMetaForStatus).
            merged = copy.deepcopy(old)
            merged["status"] = new.get("status", {})
            new, metadata = merged, merged["metadata"]
        elif resource.has_status and "status" in old:
            new["status"] = copy.deepcopy(old["status"])
        strategy = strategy_for(resource.plural)
        if subresource != "status":
            strategy.prepare_for_update(new, old, self.store)
            causes = metadata_causes(metadata) + _finalizer_causes(metadata, old_meta)
            causes += strategy.validate(new, old, self.store)
            if causes:
                raise status.invalid(resource.kind, resource.group, name, causes)
        if resource.has_generation and new.get("spec") != old.get("spec"):
            metadata["generation"] = int(old_meta.get("generation", 1)) + 1
        metadata["resourceVersion"] = old_meta["resourceVersion"]
        if admit is not None:  # validating admission sees no-op writes too
            admit(new, old)
        if new == old:
            return old  # a no-op write stores nothing and sends no event, as etcd3 does
        if dry_run:
            return new
        key = self.key(resource, old_meta.get("namespace", ""), name)
        if _deletion_complete(new):
            removed = self.store.remove(resource.key, key)
            self._after_removal(old_meta.get("namespace", ""))
            return removed or new
        return self.store.put(resource.key, key, new)

    # delete ----------------------------------------------------------------------------

    def delete(
        self,
        resource: ResourceType,
        namespace: str,
        name: str,
        options: dict[str, Any],
        *,
        dry_run: bool = False,
        admit: Admit | None = None,
    ) -> DeleteResult:
        self.require_namespace(resource, namespace, creating=False)
        entry = self.get(resource, namespace, name)
        obj = json.loads(entry.raw)
        metadata = obj["metadata"]
        preconditions = options.get("preconditions") or {}
        for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
            wanted = preconditions.get(field)
            if wanted and wanted != metadata.get(field):
                raise ApiError(
                    409,
                    f"Precondition failed: {label} in precondition: {wanted}, {label} in "
                    f"object meta: {metadata.get(field)}",
                    reason="Conflict",
                    details={"name": name, "kind": resource.plural},
                )
        if admit is not None:
            admit(None, obj)
        grace = self._grace_period(resource, obj, options)
        already = metadata.get("deletionTimestamp")
        shorter = grace is not None and grace < int(metadata.get("deletionGracePeriodSeconds", 0))
        finishing = grace == 0 and not metadata.get("finalizers")
        if already and not shorter and not finishing:
            return DeleteResult(obj, removed=False)  # already terminating
        if dry_run:
            return DeleteResult(obj, removed=grace in (None, 0) and not metadata.get("finalizers"))
        key = self.key(resource, namespace, name)
        if resource.plural == "namespaces":
            if name in _UNDELETABLE_NAMESPACES:
                raise ApiError(
                    403,
                    f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                    details={"name": name, "kind": "namespaces"},
                )
            return self._delete_namespace(obj)
        if grace or metadata.get("finalizers"):
            metadata["deletionTimestamp"] = now_rfc3339(grace or 0)
            metadata["deletionGracePeriodSeconds"] = grace or 0
            return DeleteResult(self.store.put(resource.key, key, obj), removed=False)
        removed = self.store.remove(resource.key, key) or obj
        self._after_removal(namespace)
        return DeleteResult(removed, removed=True)

    @staticmethod
    def _grace_period(resource: ResourceType, obj: Obj, options: dict[str, Any]) -> int | None:
        """Seconds a pod is given to stop; None for kinds that are removed at once."""
        wanted = options.get("gracePeriodSeconds")
        if resource.plural != "pods":
            return None
        spec, phase = obj.get("spec") or {}, (obj.get("status") or {}).get("phase")
        # Unscheduled or finished pods have nothing to stop (pod strategy CheckGracefulDelete).
        if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
            return 0
        if wanted is None:
            wanted = spec.get("terminationGracePeriodSeconds", 30)
        return max(int(wanted), 0)

    def _delete_namespace(self, obj: Obj) -> DeleteResult:
        name = obj["metadata"]["name"]
        if not obj["metadata"].get("deletionTimestamp"):
            obj["metadata"]["deletionTimestamp"] = now_rfc3339()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            obj["status"] = {"phase": "Terminating"}
            self.store.put(NAMESPACES, ("", name), obj)
        # What the namespace controller does: delete the content, then the namespace.
        for resource_key, key in list(self.store.namespaced_keys(name)):
            resource = by_key(*resource_key)
            entry = self.store.get(resource_key, key)
            if entry is None or entry.obj["metadata"].get("deletionTimestamp"):
                continue
            self.delete(resource, name, key[1], {})
        removed = self._after_removal(name)
        current = self.store.get(NAMESPACES, ("", name))
        return DeleteResult(removed or (current.obj if current else obj), removed=bool(removed))

    def _after_removal(self, namespace: str) -> Obj | None:
        """Finish a terminating namespace once its last object is gone."""
        if not namespace:
            return None
        entry = self.store.get(NAMESPACES, ("", namespace))
        if entry is None or not entry.obj["metadata"].get("deletionTimestamp"):
            return None
        if self.store.count_in_namespace(namespace):
            return None
        return self.store.remove(NAMESPACES, ("", namespace))

    def delete_collection(
        self,
        resource: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        options: dict[str, Any],
        admit: Admit | None = None,
    ) -> list[Obj]:
        if namespace:
            self.require_namespace(resource, namespace, creating=False)
        page = self.list_page(resource, namespace, labels, fields)
        deleted = []
        for entry in page.entries:
            metadata = entry.obj["metadata"]
            result = self.delete(
                resource, metadata.get("namespace", ""), metadata["name"], options, admit=admit
            )
            deleted.append(result.obj)
        return deleted

    def returns_deleted_object(self, resource: ResourceType) -> bool:
        return resource.plural in _RETURNS_DELETED_OBJECT


def _entry_key(entry: Entry) -> tuple[str, str]:
    metadata = entry.obj["metadata"]
    return (metadata.get("namespace", ""), metadata["name"])


def _qualified(resource: ResourceType) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else resource.plural


def _finalizer_causes(metadata: dict[str, Any], old: dict[str, Any]) -> list[tuple[str, str]]:
    """An object being deleted may lose finalizers but gain none."""
    if not old.get("deletionTimestamp"):
        return []
    added = [f for f in metadata.get("finalizers") or [] if f not in (old.get("finalizers") or [])]
    if not added:
        return []
    quoted = ", ".join(f'"{f}"' for f in added)
    return [
        (
            "metadata.finalizers",
            "Forbidden: no new finalizers can be added if the object "
            f"is being deleted, found new finalizers []string{{{quoted}}}",
        )
    ]


def _deletion_complete(obj: Obj) -> bool:
    metadata = obj["metadata"]
    return bool(
        metadata.get("deletionTimestamp")
        and not metadata.get("finalizers")
        and not metadata.get("deletionGracePeriodSeconds")
    )
