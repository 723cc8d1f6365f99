"""Applying a folder of manifests through the API, as `kubectl apply -f <dir>` does.

Files are read in name order (.yaml, .yml, .json; `kind: List` unpacked), Namespaces
are applied first, then everything in file order. A missing object is created with the
kubectl.kubernetes.io/last-applied-configuration annotation; an existing one is patched
(strategic merge) with the manifest. Unlike kubectl's three-way merge, a field removed
from a manifest is not removed from the live object.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from devcluster.runner.kube import Kube, Obj, kind_of

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
    if (
        live.get("metadata", {}).get("annotations", {}).get(LAST_APPLIED)
        == annotated["metadata"]["annotations"][LAST_APPLIED]
    ):
        return f"{label} unchanged"
    kube.patch_sync(kind, name, annotated, namespace)
    return f"{label} configured"


def apply(kube: Kube, paths: Iterable[pathlib.Path]) -> list[str]:
    return [apply_one(kube, manifest) for manifest in load(paths)]
