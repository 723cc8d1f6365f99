"""Applying a folder of manifests through the API, as `kubectl apply -f <dir>` does.

Files are read in name order (.yaml, .yml, .json; `kind: List` unpacked), Namespaces
are applied first, then everything in file order. A missing object is created with the
kubectl.kubernetes.io/last-applied-configuration annotation; an existing one gets
kubectl's three-way strategic merge patch (runner.threeway) from that annotation, the
manifest and the live object, so drifted fields return to the manifest's values.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from devcluster.runner.kube import Kube, Obj, kind_of
from devcluster.runner.threeway import three_way_patch

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
SUFFIXES = (".yaml", ".yml", ".json")


def load(paths: Iterable[pathlib.Path]) -> list[Obj]:
    """Every object of the given files and folders, Namespaces first."""
    documents: list[Obj] = []
    for path in paths:
        files = (
            sorted(p for p in path.iterdir() if p.suffix in SUFFIXES) if path.is_dir() else [path]
        )
        for file in files:
            for document in yaml.safe_load_all(file.read_text()):
                if not document:
                    continue
                if not isinstance(document, dict):
                    raise ValueError(f"{file}: a manifest must be a mapping")
                items = document.get("items") if document.get("kind") == "List" else [document]
                documents.extend(items or [])
    namespaces = [d for d in documents if d.get("kind") == "Namespace"]
    return namespaces + [d for d in documents if d.get("kind") != "Namespace"]


def apply_one(kube: Kube, manifest: Obj) -> str:
    """Create or patch one object; answers what `kubectl apply` would print."""
    kind = kind_of(manifest)
    meta = manifest.setdefault("metadata", {})
    name = meta.get("name")
    if not name:
        raise ValueError(f"{manifest.get('kind')} without metadata.name")
    namespace = meta.setdefault("namespace", "default") if kind.namespaced else None
    annotated: dict[str, Any] = json.loads(json.dumps(manifest))
    annotated["metadata"].setdefault("annotations", {})[LAST_APPLIED] = json.dumps(
        manifest, sort_keys=True, separators=(",", ":")
    )
    label = f"{kind.kind.lower()}/{name}"
    try:
        live = kube.get_sync(kind, name, namespace)
    except ApiException as error:
        if error.status != 404:
            raise
        kube.create_sync(kind, annotated, namespace)
        return f"{label} created"
    patch = three_way_patch(_last_applied(live), annotated, live)
    if not patch:
        return f"{label} unchanged"
    kube.patch_sync(kind, name, patch, namespace)
    return f"{label} configured"


def _last_applied(live: Obj) -> Obj:
    """What the last apply set; without a readable annotation (an object `kubectl create`
    made, or an annotation edited by hand) nothing is known to delete, and the patch
    writes a fresh annotation."""
    text = (live.get("metadata", {}).get("annotations") or {}).get(LAST_APPLIED)
    try:
        original = json.loads(text) if text else {}
    except ValueError:
        return {}
    return original if isinstance(original, dict) else {}


def apply(kube: Kube, paths: Iterable[pathlib.Path]) -> list[str]:
    return [apply_one(kube, manifest) for manifest in load(paths)]
