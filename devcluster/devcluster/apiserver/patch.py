"""The three PATCH flavours of kube-apiserver: strategic merge, JSON merge and JSON patch."""

from __future__ import annotations

import copy
from typing import Any

from devcluster.apiserver.status import ApiError, bad_request

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"

# patchMergeKey of the list fields the built-in kinds declare (k8s.io/api types.go),
# keyed by the field name and, where one name has two keys, by its parent field.
_MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "podIPs": "ip",
    "hostIPs": "ip",
    "ownerReferences": "uid",
    "addresses": "type",
    "resourceClaims": "name",
    "ports": "port",
}
_CONTAINER_LISTS = {"containers", "initContainers", "ephemeralContainers"}
# Lists of scalars with patchStrategy "merge": entries are unioned, not replaced.
MERGED_SCALAR_LISTS = {"finalizers"}


def merge_key(path: tuple[str, ...]) -> str | None:
    name = path[-1] if path else ""
    if name == "ports" and len(path) >= 2 and path[-2] in _CONTAINER_LISTS:
        return "containerPort"
    if name == "ports" and path[:1] == ("subsets",):
        return None  # Endpoints subsets ports are atomic
    if name == "addresses" and path[:1] != ("status",):
        return None  # only Node status addresses merge by type
    return _MERGE_KEYS.get(name)


# JSON merge patch (RFC 7386) ---------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# Strategic merge patch ----------------------------------------------------------------------


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict) or not isinstance(target, dict):
        raise bad_request("strategic merge patch: the patch and the object must be JSON objects")
    return _merge_map(target, patch, ())


def _merge_map(target: dict[str, Any], patch: dict[str, Any], path: tuple[str, ...]) -> Any:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    if directive is not None:
        raise bad_request(f"Unknown patch type: {directive} in map: {patch}")
    result = copy.deepcopy(target)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$retainKeys", "$patch") or key.startswith("$setElementOrder/"):
            continue  # element order is advisory; the server keeps the patch order
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [item for item in result[field] if item not in value]
            continue
        if value is None:
            result.pop(key, None)
            continue
        current = result.get(key)
        if isinstance(value, dict):
            merged = _merge_map(current if isinstance(current, dict) else {}, value, (*path, key))
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(current, value, (*path, key))
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(target: Any, patch: list[Any], path: tuple[str, ...]) -> list[Any]:
    current = target if isinstance(target, list) else []
    field = path[-1]
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    if field in MERGED_SCALAR_LISTS:
        merged = list(current)
        merged.extend(item for item in patch if item not in merged)
        return merged
    key = merge_key(path)
    if key is None or not all(isinstance(item, dict) for item in patch):
        return copy.deepcopy(patch)  # atomic list: the patch replaces it
    result = [copy.deepcopy(item) for item in current]
    for item in patch:
        if key not in item:
            raise bad_request(f"map: {item} does not contain declared merge key: {key}")
        index = next(
            (
                i
                for i, existing in enumerate(result)
                if isinstance(existing, dict) and existing.get(key) == item[key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del result[index]
            continue
        if index is None:
            merged = _merge_map({}, item, path)
            if merged is not None:
                result.append(merged)
        else:
            merged = _merge_map(result[index], item, path)
            if merged is None:
                del result[index]
            else:
                result[index] = merged
    return result


# JSON patch (RFC 6902) -----------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f'json patch: path "{path}" must start with "/"')
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _resolve(doc: Any, parts: list[str], path: str) -> Any:
    for part in parts:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            raise ApiError(422, f"jsonpatch: path {path} does not exist", reason="Invalid")
    return doc


def _container(doc: Any, path: str) -> tuple[Any, str]:
    parts = _pointer(path)
    if not parts:
        raise bad_request("json patch: the root cannot be the target of this operation")
    return _resolve(doc, parts[:-1], path), parts[-1]


def _add(doc: Any, path: str, value: Any) -> None:
    parent, last = _container(doc, path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise ApiError(422, f"jsonpatch add: index out of range in {path}", reason="Invalid")
    else:
        raise ApiError(422, f"jsonpatch add: {path} has no parent object", reason="Invalid")


def _remove(doc: Any, path: str) -> Any:
    parent, last = _container(doc, path)
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise ApiError(
        422,
        f"jsonpatch remove operation does not apply: doc is missing path: {path}",
        reason="Invalid",
    )


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise bad_request("json patch: the body must be a JSON array of operations")
    doc = copy.deepcopy(target)
    for operation in operations:
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise bad_request(f"json patch: malformed operation {operation}")
        op, path = operation["op"], operation["path"]
        if op in ("add", "replace", "test") and "value" not in operation:
            raise bad_request(f'json patch: operation "{op}" on {path} has no value')
        match op:
            case "add":
                _add(doc, path, copy.deepcopy(operation["value"]))
            case "remove":
                _remove(doc, path)
            case "replace":
                _remove(doc, path)
                _add(doc, path, copy.deepcopy(operation["value"]))
            case "move":
                _add(doc, path, _remove(doc, operation["from"]))
            case "copy":
                _add(doc, path, copy.deepcopy(_resolve(doc, _pointer(operation["from"]), path)))
            case "test":
                if _resolve(doc, _pointer(path), path) != operation["value"]:
                    raise ApiError(422, f"testing value {path} failed", reason="Invalid")
            case _:
                raise bad_request(f"json patch: unsupported operation {op}")
    return doc


def apply_patch(content_type: str, target: Any, body: Any) -> Any:
    base = content_type.split(";")[0].strip()
    if base == STRATEGIC_MERGE_PATCH:
        return strategic_merge_patch(target, body)
    if base == MERGE_PATCH:
        return merge_patch(target, body)
    if base == JSON_PATCH:
        return json_patch(target, body)
    raise ApiError(
        415,
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH}",
        reason="UnsupportedMediaType",
    )
