"""Keyset paging for List methods (AIP-158): the page size a request may ask for, and
opaque page tokens that carry the key of the previous page's last row.

A service fetches one row more than the page size; the extra row tells whether another
page follows. A token is base64url of a service-chosen prefix and the key, so a token
of another service (or another list) is refused rather than misread.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import TypeVar

from micro.errors import invalid_argument

T = TypeVar("T")

# page_size is an int32 in every List request: the largest size a request can carry, and
# the bound an HTTP query declares (a larger one is 400, like a negative one).
MAX_REQUESTED_PAGE_SIZE = 2**31 - 1


def page_size(requested: int, *, default: int, maximum: int) -> int:
    """0 asks for the default and sizes above the maximum are lowered to it (AIP-158); a
    negative size, or one no int32 holds, is INVALID_ARGUMENT naming pageSize."""
    if not 0 <= requested <= MAX_REQUESTED_PAGE_SIZE:
        raise invalid_argument(
            "pageSize", f"must be between 0 and {MAX_REQUESTED_PAGE_SIZE} (got {requested})"
        )
    return min(requested or default, maximum)


def encode_page_token(prefix: str, key: str) -> str:
    return base64.urlsafe_b64encode(f"{prefix}{key}".encode()).decode().rstrip("=")


def decode_page_token(prefix: str, token: str) -> str | None:
    """The key a token of encode_page_token(prefix, ...) carries; None for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    return raw.removeprefix(prefix) if raw.startswith(prefix) else None


def start_after(prefix: str, token: str, valid: Callable[[str], bool]) -> str | None:
    """The key after which the requested page starts, None for the first page (no token).
    A token this list did not issue, or whose key `valid` refuses, is INVALID_ARGUMENT
    naming pageToken."""
    if not token:
        return None
    key = decode_page_token(prefix, token)
    if key is None or not valid(key):
        raise invalid_argument("pageToken", "not a token from a previous response")
    return key


def split_page(
    rows: Sequence[T], size: int, prefix: str, key: Callable[[T], str]
) -> tuple[list[T], str]:
    """The page (the first `size` of up to size + 1 rows fetched) and the next page's
    token, "" on the last page."""
    page = list(rows[:size])
    more = len(rows) > size
    return page, encode_page_token(prefix, key(page[-1])) if more else ""
