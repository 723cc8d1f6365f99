"""Service identity: which service calls, proven by its pod-bound service-account token.

Every internal gRPC call carries the caller's projected token (audience: the callee's
registry name) in the `x-micro-identity` metadata; the callee verifies it offline
against the API server's service-account issuer (micro.identity.verifier), checks that
the caller's pod still exists (micro.identity.pods) and that identity.allow lets it call
the method (micro.identity.authorization). Handlers read the caller with
`current_caller()`.
"""

from micro.identity.principal import (
    IDENTITY_METADATA_KEY,
    CallerIdentity,
    acting_for,
    current_caller,
    service_account_principal,
)

__all__ = [
    "IDENTITY_METADATA_KEY",
    "CallerIdentity",
    "acting_for",
    "current_caller",
    "service_account_principal",
]
