"""Service-account tokens for pods, through the TokenRequest API as a kubelet gets them,
kept and renewed as the kubelet's token manager does: a token is requested again once it
is older than 80% of its lifetime, or 24 hours."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import kubernetes.client

from devcluster.runner.kube import Kube, Obj

log = logging.getLogger(__name__)

REFRESH_FRACTION = 0.8
MAX_AGE_S = 24 * 3600.0
# Test-only: caps the refresh period so that a test sees a renewal within seconds while
# expirationSeconds keeps kube's minimum of 600. Unset in real use.
REFRESH_CAP_ENV = "DEVCLUSTER_TOKEN_REFRESH_SECONDS"


def refresh_cap() -> float | None:
    """The test-only cap from the environment; None when unset or not a positive number."""
    raw = os.environ.get(REFRESH_CAP_ENV, "")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value <= 0:
        log.warning("%s=%r is not a positive number of seconds: ignored", REFRESH_CAP_ENV, raw)
        return None
    log.warning("%s=%g: tokens renewed that often (a test-only setting)", REFRESH_CAP_ENV, value)
    return value


def request_token(kube: Kube, pod: Obj, audiences: list[str], seconds: int) -> str:
    """POST .../serviceaccounts/<sa>/token bound to the pod (blocking)."""
    meta = pod["metadata"]
    account = pod["spec"].get("serviceAccountName") or "default"
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": audiences,
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta.get("uid", ""),
            },
        },
    }
    core: Any = kubernetes.client.CoreV1Api(kube.api_client)  # dict body, raw answer
    response = core.create_namespaced_service_account_token(
        account, meta["namespace"], body, _preload_content=False
    )
    try:
        answer: Obj = json.loads(response.data)
    finally:
        response.release_conn()
    token: str = answer["status"]["token"]
    return token


class TokenCache:
    """One pod's tokens by (audiences, expirationSeconds); the volumes that show them are
    rewritten when next_refresh() has passed. Used from worker threads."""

    def __init__(self, request: Callable[[list[str], int], str], cap_s: float | None) -> None:
        self._request = request
        self._cap_s = cap_s
        self._lock = threading.Lock()
        # key -> (token, monotonic time it is due for renewal)
        self._tokens: dict[tuple[tuple[str, ...], int], tuple[str, float]] = {}

    def _period(self, seconds: int) -> float:
        period = min(REFRESH_FRACTION * seconds, MAX_AGE_S)
        return min(period, self._cap_s) if self._cap_s is not None else period

    def get(self, audiences: list[str], seconds: int) -> str:
        """The kept token, or a new one when there is none or it is due."""
        key = (tuple(audiences), seconds)
        with self._lock:
            kept = self._tokens.get(key)
            if kept is not None and time.monotonic() < kept[1]:
                return kept[0]
        token = self._request(audiences, seconds)
        with self._lock:
            self._tokens[key] = (token, time.monotonic() + self._period(seconds))
        return token

    def next_refresh(self) -> float | None:
        """When the first kept token is due (time.monotonic()); None with no tokens."""
        with self._lock:
            return min((due for _, due in self._tokens.values()), default=None)
