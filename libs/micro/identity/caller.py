"""The caller's side of service identity: the projected token each dependency is called
with, kept in memory and re-read when the kubelet rotates it."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from micro.config.model import IdentityConfig
from micro.kube.paths import container_path

# The kubelet refreshes a token long before it expires, so a second's delay is harmless.
CHECK_EVERY_S = 1.0

log = logging.getLogger("micro.identity.caller")


class TokenFile:
    """One projected token file, read once and again only when it changed.

    The kubelet replaces a projected volume by pointing its `..data` symlink at a new
    folder, so the file's (device, inode, mtime, size) change: `current()` stats the path
    at most every `check_every_s` and reads it only then. A missing or empty file means
    no identity (the callee refuses the call); that is logged once until it comes back.
    """

    def __init__(
        self,
        path: Path,
        *,
        check_every_s: float = CHECK_EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._check_every_s = check_every_s
        self._clock = clock
        self._next_check = float("-inf")
        self._seen: tuple[int, int, int, int] | None = None
        self._token: str | None = None
        self._missing_reported = False

    def current(self) -> str | None:
        """The token to send now, or None when there is none."""
        now = self._clock()
        if now >= self._next_check:
            self._next_check = now + self._check_every_s
            self._refresh()
        return self._token

    def _refresh(self) -> None:
        try:
            stat = os.stat(self.path)  # follows ..data, so a swap shows as a new inode
            if (seen := (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)) != self._seen:
                token = self.path.read_text().strip()
                self._seen, self._token = seen, token or None
        except OSError as error:
            self._seen, self._token = None, None
            self._report_missing(error.strerror or type(error).__name__)
            return
        if self._token is None:
            self._report_missing("the file is empty")
        else:
            self._missing_reported = False

    def _report_missing(self, why: str) -> None:
        if not self._missing_reported:
            self._missing_reported = True
            log.warning("identity: no token at %s (%s): calls go without identity", self.path, why)


class CallerTokens:
    """The tokens this service calls its dependencies with, one per dependency:
    `<token_dir>/<registry name>` inside the container, whose audience is that registry
    name (what the callee checks). Sent in x-micro-identity by the client interceptors."""

    def __init__(self, token_dir: str, *, check_every_s: float = CHECK_EVERY_S) -> None:
        self.folder = container_path(token_dir)
        self._check_every_s = check_every_s
        self._files: dict[str, TokenFile] = {}

    def token_file(self, service_name: str) -> TokenFile:
        token_file = self._files.get(service_name)
        if token_file is None:
            if not service_name or "/" in service_name or service_name.startswith("."):
                raise ValueError(f"identity: {service_name!r} cannot name a token file")
            token_file = TokenFile(self.folder / service_name, check_every_s=self._check_every_s)
            self._files[service_name] = token_file
        return token_file

    def token(self, service_name: str) -> str | None:
        """The token to call service_name with now, or None (the call goes without)."""
        return self.token_file(service_name).current()


def caller_tokens(cfg: IdentityConfig) -> CallerTokens | None:
    """The tokens to call with: with identity.mode kubernetes; None when it is off."""
    return CallerTokens(cfg.token_dir) if cfg.mode == "kubernetes" else None
