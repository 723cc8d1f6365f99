"""What a non-public gRPC port asks of every call: a verified, allowed caller identity."""

from __future__ import annotations

from collections.abc import Callable

from micro.identity.authorization import Authorizer
from micro.identity.pods import PodLiveness
from micro.identity.principal import IDENTITY_METADATA_KEY, CallerIdentity
from micro.identity.refusals import IdentityRefusal, RefusalLog
from micro.identity.verifier import IdentityVerifier


class IdentityGuard:
    """Verifies and authorizes the caller of one call; `start()`/`stop()` run the pod
    watch when there is one."""

    def __init__(
        self,
        verifier: IdentityVerifier,
        authorizer: Authorizer,
        *,
        pods: PodLiveness | None = None,
        refusals: RefusalLog | None = None,
    ) -> None:
        self.verifier = verifier
        self._authorizer = authorizer
        self.pods = pods
        self._refusals = refusals or RefusalLog()

    async def start(self) -> None:
        if self.pods is not None:
            await self.pods.start()

    async def stop(self) -> None:
        if self.pods is not None:
            await self.pods.stop()

    async def admit(
        self, method: str, token: str | None, peer: Callable[[], str] = str
    ) -> CallerIdentity:
        """The caller of `method`; a ServiceError UNAUTHENTICATED or PERMISSION_DENIED
        (logged and counted) when it may not call. `peer()`, read only for a refusal,
        is the connection's address."""
        try:
            if not token:
                raise IdentityRefusal("missing", f"missing {IDENTITY_METADATA_KEY} metadata")
            caller = await self.verifier.verify(token)
            self._authorizer.authorize(caller, method)
        except IdentityRefusal as refusal:
            self._refusals.refused(refusal, method, peer())
            raise refusal.error() from None
        return caller
