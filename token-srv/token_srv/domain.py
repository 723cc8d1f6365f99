"""Tokens as token-srv sees them: claims, pairs and refresh-token records."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

DEFAULT_PLATFORM = "TOKEN_PLATFORM_WEB"
PLATFORMS = ("TOKEN_PLATFORM_WEB", "TOKEN_PLATFORM_ANDROID", "TOKEN_PLATFORM_IOS")
ROLES = ("user", "admin")


@dataclass(frozen=True)
class Subject:
    """Whom a token is issued for."""

    user_id: str
    user_name: str
    role: str = "user"
    platform: str = DEFAULT_PLATFORM


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    token_type: str = "Bearer"  # noqa: S105 - a scheme name


@dataclass(frozen=True)
class RefreshRecord:
    token_hash: str
    family_id: str  # every token rotated from one login shares it
    subject: Subject
    expires_at: datetime
    spent_at: datetime | None = None
    revoked_at: datetime | None = None


def refresh_token_hash(token: str) -> str:
    """Refresh tokens are 256 random bits, so a plain SHA-256 suffices to store them."""
    return hashlib.sha256(token.encode()).hexdigest()
