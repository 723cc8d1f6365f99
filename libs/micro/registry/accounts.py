"""Registration no pod can forge: a service is served only by Pods running as its service
account (spec.serviceAccountName, immutable once the Pod exists), whatever labels a Pod
carries. Both Pod and EndpointSlice discovery check it here."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from prometheus_client import Counter

from micro.kube import JsonObject
from micro.registry.names import short_name

# What Kubernetes sets when a Pod names no service account.
DEFAULT_ACCOUNT = "default"

FORGED_INSTANCES = Counter(
    "micro_registry_forged_instances",
    "Pods that claimed a service while running under another service account "
    "(never routed to), counted once per pod.",
    ["service"],
)

log = logging.getLogger("micro.registry")


def pod_account(pod: JsonObject) -> str:
    """The service account a Pod runs as."""
    spec = pod.get("spec") or {}
    return str(spec.get("serviceAccountName") or DEFAULT_ACCOUNT)


class ServiceAccounts:
    """registry.accounts: the account each service's Pods must run as, by registry name;
    a service not listed: its short name (go-micro.user-srv -> user-srv)."""

    def __init__(self, configured: Mapping[str, str] | None = None) -> None:
        self._configured = dict(configured or {})

    def expected(self, service_name: str) -> str:
        return self._configured.get(service_name) or short_name(service_name)

    def update(self, configured: Mapping[str, str]) -> bool:
        """Take the new map; True when it differs from the one in use."""
        new = dict(configured)
        changed, self._configured = new != self._configured, new
        return changed


class ForgeryCheck:
    """The account check of one service's Pods.

    A Pod under the wrong account is reported once (one warning, one count); it is
    warned about again only when the account expected of it changes, and forgotten when
    it is deleted.
    """

    def __init__(self, service_name: str) -> None:
        self.service_name = service_name
        self._reported: dict[str, str] = {}  # pod key -> the account it was expected to have

    def allows(self, key: str, pod: JsonObject, expected: str) -> bool:
        account = pod_account(pod)
        if account == expected:
            self._reported.pop(key, None)
            return True
        previous = self._reported.get(key)
        if previous != expected:
            if previous is None:
                FORGED_INSTANCES.labels(self.service_name).inc()
            self._reported[key] = expected
            log.warning(
                "registry: pod %s skipped for %s: it runs as service account %s, not %s",
                key,
                self.service_name,
                account,
                expected,
            )
        return False

    def forget(self, key: str) -> None:
        self._reported.pop(key, None)
