"""Deep merge of config documents, and which document set a given field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from micro.config.documents import ConfigDocument


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new mapping: `override` wins; mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = value
    return merged


def merge_documents(documents: Sequence[ConfigDocument]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for document in documents:
        merged = deep_merge(merged, document.data)
    return merged


def origin_of(
    path: Sequence[str | int], documents: Sequence[ConfigDocument]
) -> ConfigDocument | None:
    """The last document (in merge order) that set the value at `path`, if any did.

    A document sets it when it holds the full path, or replaces a prefix of it with a
    value that is not a mapping (the merge then drops whatever was below).
    """
    for document in reversed(documents):
        if _sets(document.data, path):
            return document
    return None


def _sets(data: Any, path: Sequence[str | int]) -> bool:
    node = data
    for part in path:
        if not isinstance(node, Mapping):
            return True  # a non-mapping above the path: this document replaced it
        if part not in node:
            return False
        node = node[part]
    return True
