"""Matching labels against a LabelSelector (matchLabels and matchExpressions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devcluster.apiserver.selectors import selector_from_object


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """True when labels satisfy the selector; an empty selector matches everything and a
    missing one nothing, as for a ReplicaSet's or Deployment's spec.selector."""
    if selector is None:
        return False
    # The API server's own matcher: it has validated the selector when it was stored.
    return selector_from_object(selector).matches(labels)


def matches_map(selector: Mapping[str, str] | None, labels: Mapping[str, str] | None) -> bool:
    """A Service's selector: a plain map; empty or missing selects nothing."""
    if not selector:
        return False
    labels = labels or {}
    return all(labels.get(key) == value for key, value in selector.items())
