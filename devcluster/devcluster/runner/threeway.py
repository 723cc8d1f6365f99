"""kubectl apply's client-side patch: a three-way strategic merge patch.

As strategicpatch.CreateThreeWayMergePatch (with overwrite, kubectl's default) computes
it from the last-applied configuration (original), the manifest (modified) and the live
object (current): every field of the manifest is set to the manifest's value, even where
the live object drifted; a field the last apply set and the manifest no longer has is
removed; a field the manifest never had (status, defaults, someone else's label) stays.
The list semantics (merge keys, merged scalar lists) are the API server's own, from
devcluster.apiserver.patch, so the patch means to the server what it means here.
"""

from __future__ import annotations

from typing import Any

from devcluster.apiserver.patch import MERGED_SCALAR_LISTS, merge_key

Patch = dict[str, Any]

DELETE_FROM_PRIMITIVE_LIST = "$deleteFromPrimitiveList/"
RETAIN_KEYS = "$retainKeys"
# Fields whose patch strategy is retainKeys (k8s.io/api): a patch lists the keys to keep,
# so that switching e.g. a volume from emptyDir to configMap drops the emptyDir.
_RETAIN_KEYS_MAPS = {("spec", "strategy")}  # DeploymentSpec.strategy
_RETAIN_KEYS_LIST_ITEMS = {"volumes"}  # PodSpec.volumes, merged by name


def three_way_patch(original: Patch, modified: Patch, current: Patch) -> Patch:
    """The strategic merge patch that takes `current` to `modified`, deleting what
    `original` had and `modified` has not; {} when there is nothing to change."""
    delta = _diff_maps(current, modified, (), changes=True, deletions=False)
    deletions = _diff_maps(original, modified, (), changes=False, deletions=True)
    return _combine(deletions, delta, ())


def _diff_maps(
    original: Patch, modified: Patch, path: tuple[str, ...], *, changes: bool, deletions: bool
) -> Patch:
    patch: Patch = {}
    for key, new in modified.items():
        if key not in original:
            if changes:
                patch[key] = new
            continue
        old = original[key]
        if isinstance(old, dict) and isinstance(new, dict):
            nested = _diff_maps(old, new, (*path, key), changes=changes, deletions=deletions)
            if nested:
                patch[key] = nested
        elif isinstance(old, list) and isinstance(new, list):
            patch.update(_diff_lists(old, new, (*path, key), changes=changes, deletions=deletions))
        elif changes and not _equal(old, new):
            patch[key] = new
    if deletions:
        patch.update({key: None for key in original if key not in modified})
    if _retains_keys(path):
        kept = sorted(key for key, value in modified.items() if value is not None)
        extra = any(value is not None and key not in modified for key, value in original.items())
        if kept and (patch or extra):
            patch[RETAIN_KEYS] = kept
    return patch


def _retains_keys(path: tuple[str, ...]) -> bool:
    return path in _RETAIN_KEYS_MAPS or (bool(path) and path[-1] in _RETAIN_KEYS_LIST_ITEMS)


def _diff_lists(
    original: list[Any],
    modified: list[Any],
    path: tuple[str, ...],
    *,
    changes: bool,
    deletions: bool,
) -> Patch:
    """The parent's patch entries for one list field: the list itself and, for merged
    scalar lists, the parallel $deleteFromPrimitiveList."""
    field = path[-1]
    if field in MERGED_SCALAR_LISTS:
        patch: Patch = {}
        added = [item for item in modified if item not in original]
        removed = [item for item in original if item not in modified]
        if changes and added:
            patch[field] = added
        if deletions and removed:
            patch[DELETE_FROM_PRIMITIVE_LIST + field] = removed
        return patch
    key = merge_key(path)
    if key is None or not _keyed(original, key) or not _keyed(modified, key):
        # An atomic list: the manifest's replaces the live one whole.
        return {field: modified} if changes and not _equal(original, modified) else {}
    old_items = {item[key]: item for item in original}
    new_keys = {item[key] for item in modified}
    items: list[Any] = []
    for item in modified:
        old = old_items.get(item[key])
        if old is None:
            if changes:
                items.append(item)
            continue
        nested = _diff_maps(old, item, path, changes=changes, deletions=deletions)
        if nested:
            items.append({**nested, key: item[key]})
    if deletions:
        items.extend(
            {key: item[key], "$patch": "delete"} for item in original if item[key] not in new_keys
        )
    return {field: items} if items else {}


def _keyed(items: list[Any], key: str) -> bool:
    return all(isinstance(item, dict) and key in item for item in items)


def _combine(deletions: Patch, delta: Patch, path: tuple[str, ...]) -> Patch:
    """Both patches in one, as the client's mergeMap(deletions, delta) does: the delta
    never names a field the deletions remove, so only nested maps and keyed lists meet."""
    combined = dict(deletions)
    for key, value in delta.items():
        mine = combined.get(key)
        if isinstance(mine, dict) and isinstance(value, dict):
            combined[key] = _combine(mine, value, (*path, key))
        elif isinstance(mine, list) and isinstance(value, list):
            combined[key] = _combine_items(mine, value, (*path, key))
        else:
            combined[key] = value
    return combined


def _combine_items(deletions: list[Any], delta: list[Any], path: tuple[str, ...]) -> list[Any]:
    key = merge_key(path)
    if key is None:
        return delta
    combined = list(deletions)
    for item in delta:
        index = next(
            (
                i
                for i, mine in enumerate(combined)
                if mine.get(key) == item.get(key) and mine.get("$patch") != "delete"
            ),
            None,
        )
        if index is None:
            combined.append(item)
        else:
            combined[index] = _combine(combined[index], item, path)
    return combined


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value (1 == 1.0), but a bool is never a number."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b
