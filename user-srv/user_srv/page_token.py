"""Opaque page tokens: the last id of the previous page, versioned and base64url-encoded."""

from __future__ import annotations

import base64
import binascii

import grpc

from micro.errors import ServiceError

_PREFIX = "users/v1/"


def encode_page_token(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{_PREFIX}{last_id}".encode()).decode().rstrip("=")


def decode_page_token(token: str) -> int:
    """The id after which the next page starts; 0 for the first page."""
    if not token:
        return 0
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raw = ""
    digits = raw.removeprefix(_PREFIX)
    if not raw.startswith(_PREFIX) or not digits.isdigit() or len(digits) > 18:
        raise ServiceError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "pageToken: not a token from a previous response",
            field="pageToken",
        )
    return int(digits)
