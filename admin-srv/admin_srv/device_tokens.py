"""Device tokens (OWASP's device cookies): a client that logged in to an account holds one,
and its logins are budgeted on their own instead of with every unknown client.

A token is `<device id>.<expiry>.<mac>`: HMAC-SHA256 over the account's user name, the
device id and the expiry, so it can be neither forged nor moved to another account. It
proves only that this client once logged in to this account; it grants nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable
from datetime import timedelta

from admin_srv.config import DeviceTokenConfig

# The HTTP cookie and the gRPC metadata key that carry the token.
COOKIE_NAME = "device_token"
METADATA_KEY = "x-device-token"
# Far above a real token (22 + 1 + 10 + 1 + 43 characters): longer input is not parsed.
MAX_TOKEN_LENGTH = 128
_TOKEN = re.compile(r"([A-Za-z0-9_-]{22})\.([0-9]{1,12})\.([A-Za-z0-9_-]{43})")

log = logging.getLogger(__name__)


class DeviceTokenSigner:
    def __init__(
        self, cfg: Callable[[], DeviceTokenConfig], clock: Callable[[], float] = time.time
    ) -> None:
        self._cfg = cfg
        self._clock = clock
        if cfg().key is None:
            log.warning("device_tokens.key is not set: device tokens hold for this process only")
        # Without a configured key: one per process (a restart makes every device unknown).
        self._fallback_key = secrets.token_bytes(32)

    @property
    def lifetime(self) -> timedelta:
        return self._cfg().lifetime

    def issue(self, user_name: str, device_id: str = "") -> str:
        """A token for this account and device (a new device when device_id is empty)."""
        device_id = device_id or secrets.token_urlsafe(16)
        expires = int(self._clock() + self._cfg().lifetime.total_seconds())
        return f"{device_id}.{expires}.{self._mac(user_name, device_id, expires)}"

    def device_id(self, token: str, user_name: str) -> str:
        """The device id of a valid, unexpired token for this account; "" otherwise
        (missing, forged, expired or another account's: an unknown client)."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return ""
        match = _TOKEN.fullmatch(token)
        if match is None:
            return ""
        device_id, expires_text, mac = match.groups()
        expires = int(expires_text)
        if expires <= self._clock():
            return ""
        if not hmac.compare_digest(mac, self._mac(user_name, device_id, expires)):
            return ""
        return device_id

    def _mac(self, user_name: str, device_id: str, expires: int) -> str:
        key = self._cfg().key
        secret = key.get_secret_value().encode() if key is not None else self._fallback_key
        message = f"device-token/v1\n{user_name}\n{device_id}\n{expires}".encode()
        digest = hmac.new(secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
