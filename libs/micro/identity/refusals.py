"""Why a caller is refused: the reason label, the message, the metric and the log.

A refusal's message names what is wrong (and, for PERMISSION_DENIED, the caller and the
method) but never the token. The log says it once per (caller, method, reason) burst:
a misconfigured caller retrying in a loop would otherwise fill the log.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

import grpc
from prometheus_client import Counter

from micro.errors import CallerIdentityRefused, ServiceError

REFUSALS = Counter(
    "micro_identity_refusals",
    "Internal calls refused for their caller identity, by reason.",
    ["reason"],
)

_log = logging.getLogger("micro.identity")


class IdentityRefusal(Exception):
    """A call refused: `reason` labels the metric, the message tells the caller why."""

    def __init__(self, reason: str, message: str, *, caller: str = "") -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.caller = caller

    @property
    def code(self) -> grpc.StatusCode:
        return (
            grpc.StatusCode.PERMISSION_DENIED
            if self.reason == "denied"
            else grpc.StatusCode.UNAUTHENTICATED
        )

    def error(self) -> ServiceError:
        if self.code is grpc.StatusCode.PERMISSION_DENIED:
            return CallerIdentityRefused(self.code, self.message)
        return CallerIdentityRefused(self.code, f"caller identity: {self.message}")


class RefusalLog:
    """Counts every refusal; logs the first of each (caller, method, reason) burst, then
    at most once per `window_s` with the number left unlogged meanwhile."""

    def __init__(
        self,
        *,
        window_s: float = 60.0,
        max_keys: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._window_s = window_s
        self._max_keys = max_keys
        self._clock = clock
        # (caller, method, reason) -> (logged at, refusals since)
        self._seen: OrderedDict[tuple[str, str, str], tuple[float, int]] = OrderedDict()

    def refused(self, refusal: IdentityRefusal, method: str, peer: str = "") -> None:
        """Count; log unless this burst was logged already. `peer` (the connection's
        address) tells where a caller whose token did not verify calls from."""
        REFUSALS.labels(refusal.reason).inc()
        key = (refusal.caller or "(unknown)", method, refusal.reason)
        now = self._clock()
        logged_at, since = self._seen.get(key, (None, 0))
        if logged_at is not None and now - logged_at < self._window_s:
            self._seen[key] = (logged_at, since + 1)
            return
        self._seen[key] = (now, 0)
        self._seen.move_to_end(key)
        while len(self._seen) > self._max_keys:
            self._seen.popitem(last=False)
        _log.warning(
            "refused %s from %s at %s: %s (%s)%s",
            method,
            key[0],
            peer or "(unknown peer)",
            refusal.reason,
            refusal.message,
            f"; {since} more refused like it before" if since else "",
            extra={
                "fields": {
                    "caller": key[0],
                    "peer": peer,
                    "method": method,
                    "reason": refusal.reason,
                }
            },
        )
