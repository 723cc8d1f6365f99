"""The service-account issuer's keys, from the API server this service already talks to.

The keys come from the API server's own /openid/v1/jwks, not from the discovery
document's jwks_uri: on managed clusters that points to a public bucket or another
host, while the API server always serves the keys itself, to the pod's own token. The
discovery document is read only for the issuer when identity.issuer is empty. Both
travel through the service's kube ApiClient (micro.kube), in a thread, since the
official client is synchronous.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import kubernetes.client

from micro.jwks import JwksCache
from micro.kube.rest import get_json

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"


class IssuerKeys:
    """The issuer and its keys (a micro.jwks.JwksCache), fetched together."""

    def __init__(
        self,
        api: kubernetes.client.ApiClient,
        *,
        issuer: str = "",
        max_age: timedelta = timedelta(minutes=5),
        min_refetch_interval: timedelta = timedelta(seconds=5),
        timeout: tuple[float, float] = (3.0, 5.0),
    ) -> None:
        self._api = api
        self._configured_issuer = issuer
        self._discovered_issuer = ""
        self._timeout = timeout
        self.cache = JwksCache(
            self._fetch, max_age=max_age, min_refetch_interval=min_refetch_interval
        )

    @property
    def issuer(self) -> str:
        """The configured issuer, else the discovered one ("" before the first fetch)."""
        return self._configured_issuer or self._discovered_issuer

    async def _fetch(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._fetch_now)

    def _fetch_now(self) -> list[dict[str, Any]]:
        if not self._configured_issuer:
            document = get_json(self._api, DISCOVERY_PATH, [], self._timeout)
            issuer = document.get("issuer")
            if not isinstance(issuer, str) or not issuer:
                raise ValueError(f"{DISCOVERY_PATH} names no issuer")
            self._discovered_issuer = issuer
        jwks = get_json(self._api, JWKS_PATH, [], self._timeout)
        keys = jwks.get("keys")
        if not isinstance(keys, list):
            raise ValueError(f"{JWKS_PATH} has no keys list")
        return [key for key in keys if isinstance(key, dict)]
