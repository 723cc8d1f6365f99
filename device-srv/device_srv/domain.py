"""What a device is, which names are valid, and the prefix of its list's page tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass

NAME_MAX_LENGTH = 63
# Same alphabet as a Kubernetes label value: safe in URLs, logs and label selectors.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
PAGE_TOKEN_PREFIX = "after:"  # noqa: S105 (a page cursor, not a secret)


@dataclass(frozen=True)
class Device:
    name: str
    active: bool


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid device name, or None when it is."""
    if not name:
        return "must not be empty"
    if len(name) > NAME_MAX_LENGTH:
        return f"must be at most {NAME_MAX_LENGTH} characters (got {len(name)})"
    if not _NAME_PATTERN.fullmatch(name):
        return "may contain only ASCII letters, digits, '.', '_' and '-'"
    return None


def is_valid_name(name: str) -> bool:
    return name_problem(name) is None
