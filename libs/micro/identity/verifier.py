"""Verifies a caller's projected service-account token, offline, once per token.

Checked: the signature (ES256 or RS256, a key of the issuer's JWKS), iss, aud (this
service's registry name, which each caller's token was projected for), exp and nbf with
a small leeway, and the kubernetes.io claims of a pod-bound token: namespace, service
account name and uid, pod name and uid. A token not bound to a pod is refused: it could
have been minted for anything (a TokenRequest without a pod) and cannot be revoked with
a pod. Each distinct token is verified once and kept in a bounded LRU until its exp,
so a call costs a dict lookup; the pod check (micro.identity.pods) runs on every call.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import jwt

from micro.auth import jwt_rule
from micro.identity.issuer import IssuerKeys
from micro.identity.pods import PodLiveness
from micro.identity.principal import CallerIdentity
from micro.identity.refusals import IdentityRefusal
from micro.jwks import KeyRefusal, KeysUnavailable

ALGORITHMS = ("ES256", "RS256")  # what kube-apiserver signs service-account tokens with

# The metric's reason for each PyJWT rule (micro.auth.jwt_rule).
_REASON_BY_RULE = {
    "expired": "expired",
    "not valid yet": "not_yet_valid",
    "wrong issuer": "issuer",
    "wrong audience": "audience",
    "bad signature": "signature",
}


@dataclass(frozen=True, slots=True)
class _Verified:
    caller: CallerIdentity
    expires: float  # exp, in time.time() seconds


class IdentityVerifier:
    """`await verify(token)` -> CallerIdentity, or IdentityRefusal (see the module doc)."""

    def __init__(
        self,
        keys: IssuerKeys,
        *,
        audience: str,
        pods: PodLiveness | None = None,
        leeway: timedelta = timedelta(seconds=5),
        cache_size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = keys
        self._audience = audience
        self._pods = pods
        self._leeway = leeway.total_seconds()
        self._cache_size = cache_size
        self._clock = clock
        self._verified: OrderedDict[str, _Verified] = OrderedDict()
        self.verifications = 0  # tokens fully verified (not answered from the cache)

    async def verify(self, token: str) -> CallerIdentity:
        known = self._verified.get(token)
        if known is not None and self._clock() < known.expires + self._leeway:
            self._verified.move_to_end(token)
            caller = known.caller
        else:
            caller = await self._verify_now(token)
        if self._pods is not None:
            await self._pods.check(caller)
        return caller

    async def _verify_now(self, token: str) -> CallerIdentity:
        self._verified.pop(token, None)
        self.verifications += 1
        try:
            key, alg = await self._keys.cache.signing_key(token, ALGORITHMS)
        except KeyRefusal as refusal:
            raise IdentityRefusal(refusal.reason, str(refusal)) from None
        except KeysUnavailable:
            raise IdentityRefusal("keys_unavailable", "issuer keys unavailable") from None
        try:
            claims = jwt.decode(
                token,
                key=key.jwk.key,
                algorithms=[alg],
                issuer=self._keys.issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            rule = jwt_rule(exc)
            raise IdentityRefusal(_REASON_BY_RULE.get(rule, "invalid"), rule) from None
        caller = _pod_bound_caller(claims)
        self._verified[token] = _Verified(caller, float(claims["exp"]))
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return caller


def _pod_bound_caller(claims: Mapping[str, Any]) -> CallerIdentity:
    bound = claims.get("kubernetes.io")
    bound = bound if isinstance(bound, Mapping) else {}
    account = _member(bound, "serviceaccount")
    pod = _member(bound, "pod")
    fields = {
        "namespace": bound.get("namespace"),
        "serviceaccount.name": account.get("name"),
        "serviceaccount.uid": account.get("uid"),
        "pod.name": pod.get("name"),
        "pod.uid": pod.get("uid"),
    }
    missing = [name for name, value in fields.items() if not isinstance(value, str) or not value]
    if missing:
        raise IdentityRefusal(
            "not_pod_bound",
            f"not a pod-bound service-account token (kubernetes.io claims missing: "
            f"{', '.join(missing)})",
        )
    return CallerIdentity(
        namespace=str(fields["namespace"]),
        service_account=str(fields["serviceaccount.name"]),
        pod_name=str(fields["pod.name"]),
        pod_uid=str(fields["pod.uid"]),
    )


def _member(claims: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = claims.get(name)
    return value if isinstance(value, Mapping) else {}
