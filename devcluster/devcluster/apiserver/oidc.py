"""The service-account issuer's OIDC discovery, as kube-apiserver serves it, so that a
verifier finds the keys of the tokens the API server signs (ServiceAccountIssuerDiscovery)."""

from __future__ import annotations

from typing import Any

from devcluster.apiserver.signing_keys import ALGORITHM

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/openid/v1/jwks"
JWKS_CONTENT_TYPE = "application/jwk-set+json"
# Not in kube-apiserver (its keys come from files at start): the devcluster's one way
# to rotate the signing key of a running server; cluster-admin only.
ROTATE_PATH = "/devcluster/v1/rotate-service-account-key"


def discovery_document(issuer: str, server_address: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "jwks_uri": f"https://{server_address}{JWKS_PATH}",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
    }
