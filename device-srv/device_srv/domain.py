"""What a device is, which names are valid, and how list pages are addressed."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

NAME_MAX_LENGTH = 63
# Same alphabet as a Kubernetes label value: safe in URLs, logs and label selectors.
_NAME_PATTERN = re.compile(r"[A-Za-z0-9._-]+")
_PAGE_TOKEN_PREFIX = "after:"  # noqa: S105 (a page cursor, not a secret)


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


def encode_page_token(last_name: str) -> str:
    """An opaque token naming the last device of a page; the next page starts after it."""
    raw = (_PAGE_TOKEN_PREFIX + last_name).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str) -> str | None:
    """The device name a token points after, or None when the token is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not raw.startswith(_PAGE_TOKEN_PREFIX):
        return None
    name = raw.removeprefix(_PAGE_TOKEN_PREFIX)
    return name if name_problem(name) is None else None
