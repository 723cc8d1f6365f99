"""Who called: the verified service-account identity of the current gRPC call."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

# The gRPC metadata key of the caller's token; `authorization` stays the end user's JWT.
IDENTITY_METADATA_KEY = "x-micro-identity"


def service_account_principal(namespace: str, name: str) -> str:
    """Kubernetes' user name of a service account."""
    return f"system:serviceaccount:{namespace}:{name}"


@dataclass(frozen=True, slots=True)
class CallerIdentity:
    """The caller's pod-bound service-account token, verified."""

    namespace: str
    service_account: str
    pod_name: str
    pod_uid: str

    @property
    def principal(self) -> str:
        return service_account_principal(self.namespace, self.service_account)


_caller: ContextVar[CallerIdentity | None] = ContextVar("micro_caller", default=None)


def current_caller() -> CallerIdentity | None:
    """The calling service of the current call; None on a public port or with identity off."""
    return _caller.get()


@contextmanager
def acting_for(caller: CallerIdentity | None) -> Iterator[None]:
    """Make `caller` the current call's caller inside the block."""
    token = _caller.set(caller)
    try:
        yield
    finally:
        _caller.reset(token)
