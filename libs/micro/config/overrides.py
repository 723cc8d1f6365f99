"""Per-dependency and per-method overrides of client.grpc, merged key by key.

`client.grpc.dependencies` holds plain mappings rather than a model of their own, so
that every key client.grpc has (sections added later included) may be overridden
without a second declaration; the merge is validated against client.grpc's own model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEPENDENCIES_KEY = "dependencies"
METHODS_KEY = "methods"


def split_override(name: str, override: object) -> tuple[dict[str, Any], dict[str, Any]]:
    """A dependency's own keys and its `methods`, checked for shape; ValueError naming
    where the problem is."""
    where = f"dependencies[{name!r}]"
    if not isinstance(override, Mapping):
        raise ValueError(f"{where} must be a mapping of client.grpc keys")
    own = dict(override)
    if DEPENDENCIES_KEY in own:
        raise ValueError(f"{where} cannot hold dependencies (overrides do not nest)")
    methods = own.pop(METHODS_KEY, {})
    if not isinstance(methods, Mapping):
        raise ValueError(f"{where}.methods must map method names to client.grpc keys")
    for method, keys in methods.items():
        if not isinstance(method, str) or not method.isidentifier():
            raise ValueError(
                f"{where}.methods: {method!r} is not a short method name (e.g. VerifyPassword)"
            )
        if not isinstance(keys, Mapping):
            raise ValueError(f"{where}.methods[{method!r}] must be a mapping of client.grpc keys")
        if DEPENDENCIES_KEY in keys or METHODS_KEY in keys:
            raise ValueError(f"{where}.methods[{method!r}] cannot hold dependencies or methods")
    return own, {str(m): dict(k) for m, k in methods.items()}
