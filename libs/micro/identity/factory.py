"""Builds the identity guard of a service's non-public gRPC port from its config."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import kubernetes.client

from micro.config.model import IdentityConfig, IdentityRule
from micro.identity.authorization import Authorizer
from micro.identity.guard import IdentityGuard
from micro.identity.issuer import IssuerKeys
from micro.identity.pods import PodLiveness
from micro.identity.verifier import IdentityVerifier


def identity_guard(
    config: IdentityConfig,
    *,
    api: kubernetes.client.ApiClient,
    audience: str,
    namespace: str,
    rules: Callable[[], Sequence[IdentityRule]],
) -> IdentityGuard:
    """The guard for a service named `audience` (its registry name) in `namespace`;
    `rules` answers the current identity.allow. Nothing is fetched here: the issuer's
    keys come with the first call, so the service starts while the API is away."""
    pods = PodLiveness(api, namespace)
    verifier = IdentityVerifier(IssuerKeys(api, issuer=config.issuer), audience=audience, pods=pods)
    return IdentityGuard(verifier, Authorizer(rules, namespace), pods=pods)
