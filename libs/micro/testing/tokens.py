"""Access-token claims for tests, shaped as token-srv issues them and micro.auth reads
them, so that a test signs its own tokens without writing the claims out again."""

from __future__ import annotations

import time
from typing import Any

from micro.auth import AuthConfig

ISSUER = AuthConfig().issuer
AUDIENCE = "go-micro"


def access_claims(**changes: Any) -> dict[str, Any]:
    """The claims of an access token of user 1, thangn, an admin on the web platform,
    valid from now for ten minutes; `changes` replace claims or add others."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "thangn",
        "uid": "1",
        "user_name": "thangn",
        "role": "admin",
        "platform": "TOKEN_PLATFORM_WEB",
        "iss": ISSUER,
        "aud": [AUDIENCE],
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "token-1",
    }
    return {**claims, **changes}
