"""The service-account issuer: ES256 tokens, OIDC discovery and JWKS, key rotation."""

from __future__ import annotations

import json
import pathlib
import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import kubernetes.client
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from devcluster.apiserver.oidc import ROTATE_PATH
from devcluster.testing import RunningDevCluster, body, running_devcluster

ISSUER = "https://kubernetes.default.svc.cluster.local"


def _discovery(devcluster: RunningDevCluster, token: str) -> dict[str, Any]:
    with devcluster.api_client(token) as client:
        well_known: Any = kubernetes.client.WellKnownApi(client)
        answer = well_known.get_service_account_issuer_open_id_configuration(
            _preload_content=False  # the client turns a "str" answer into a dict's repr
        )
    document: dict[str, Any] = json.loads(answer.data)
    return document


def _jwks(devcluster: RunningDevCluster, token: str) -> dict[str, Any]:
    """The key set, read through the official client as the token's user."""
    with devcluster.api_client(token) as client:
        openid: Any = kubernetes.client.OpenidApi(client)
        answer = openid.get_service_account_issuer_open_id_keyset(_preload_content=False)
    assert answer.headers["Content-Type"].startswith("application/jwk-set+json")
    keys: dict[str, Any] = json.loads(answer.data)
    return keys


def _verify(token: str, jwks: dict[str, Any], audience: str = ISSUER) -> dict[str, Any]:
    """PyJWT's verification with the key the token's kid names in the JWKS."""
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWKSet.from_dict(jwks)[kid]
    claims: dict[str, Any] = jwt.decode(
        token, key=key, algorithms=["ES256"], audience=audience, issuer=ISSUER
    )
    return claims


def _account(core: Any, namespace: str, name: str = "robot") -> None:
    core.create_namespaced_service_account(namespace, body({"metadata": {"name": name}}))


def _rotate(devcluster: RunningDevCluster) -> str:
    context = ssl.create_default_context(cafile=str(devcluster.ca_file))
    with httpx.Client(base_url=devcluster.url, verify=context) as http:
        answer = http.post(
            ROTATE_PATH, headers={"Authorization": f"Bearer {devcluster.admin_token}"}
        )
    assert answer.status_code == 200, answer.text
    kid: str = answer.json()["kid"]
    return kid


def _authenticates(devcluster: RunningDevCluster, token: str) -> bool:
    """Whether the API server takes the token (401 otherwise)."""
    with devcluster.api_client(token) as client:
        try:
            kubernetes.client.CoreApi(client).get_api_versions()
        except kubernetes.client.ApiException as error:
            if error.status == 401:
                return False
            raise
    return True


def test_a_token_request_token_verifies_against_the_jwks(
    core: Any, devcluster: RunningDevCluster, namespace: str
) -> None:
    _account(core, namespace)
    pod = core.create_namespaced_pod(
        namespace,
        body(
            {
                "metadata": {"name": "p"},
                "spec": {
                    "serviceAccountName": "robot",
                    "containers": [{"name": "c", "image": "x"}],
                },
            }
        ),
    )
    answer = core.create_namespaced_service_account_token(
        "robot",
        namespace,
        body(
            {
                "spec": {
                    "audiences": ["go-micro.token-srv"],
                    "expirationSeconds": 600,
                    "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"},
                }
            }
        ),
    )
    token = answer.status.token
    jwks = _jwks(devcluster, devcluster.service_account_token(namespace, "robot"))

    header = jwt.get_unverified_header(token)
    claims = _verify(token, jwks, audience="go-micro.token-srv")

    assert header["alg"] == "ES256"
    assert header["kid"] in {key["kid"] for key in jwks["keys"]}
    assert claims["sub"] == f"system:serviceaccount:{namespace}:robot"
    assert claims["exp"] - claims["iat"] == 600
    bound = claims["kubernetes.io"]
    assert bound["namespace"] == namespace
    assert bound["serviceaccount"]["name"] == "robot"
    assert bound["pod"] == {"name": "p", "uid": pod.metadata.uid}
    with pytest.raises(jwt.InvalidAudienceError):
        _verify(token, jwks, audience="go-micro.user-srv")


def test_the_jwks_keys_are_public_es256_keys(
    core: Any, devcluster: RunningDevCluster, namespace: str
) -> None:
    _account(core, namespace)
    jwks = _jwks(devcluster, devcluster.service_account_token(namespace, "robot"))

    assert jwks["keys"]
    for key in jwks["keys"]:
        assert {k: key[k] for k in ("kty", "crv", "use", "alg")} == {
            "kty": "EC",
            "crv": "P-256",
            "use": "sig",
            "alg": "ES256",
        }
        assert all(key[field] for field in ("kid", "x", "y"))
        assert "d" not in key  # never the private part


def test_the_discovery_document(core: Any, devcluster: RunningDevCluster, namespace: str) -> None:
    _account(core, namespace)

    document = _discovery(devcluster, devcluster.service_account_token(namespace, "robot"))

    assert document == {
        "issuer": ISSUER,
        "jwks_uri": f"{devcluster.url}/openid/v1/jwks",
        "response_types_supported": ["id_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }


def test_the_jwks_content_type_and_anonymous_refusal(
    core: Any, devcluster: RunningDevCluster, namespace: str
) -> None:
    _account(core, namespace)
    token = devcluster.service_account_token(namespace, "robot")
    context = ssl.create_default_context(cafile=str(devcluster.ca_file))
    with httpx.Client(base_url=devcluster.url, verify=context) as http:
        keys = http.get("/openid/v1/jwks/", headers={"Authorization": f"Bearer {token}"})
        anonymous = [
            http.get(path) for path in ("/openid/v1/jwks", "/.well-known/openid-configuration")
        ]
        rotation = http.post(ROTATE_PATH, headers={"Authorization": f"Bearer {token}"})

    assert keys.status_code == 200
    assert keys.headers["content-type"].startswith("application/jwk-set+json")
    for refused in anonymous:
        assert refused.status_code == 403
        assert 'User "system:anonymous"' in refused.json()["message"]
    assert rotation.status_code == 403  # only cluster-admin rotates


def test_the_discovery_role_is_bound_to_every_service_account(core: Any, api: Any) -> None:
    rbac: Any = kubernetes.client.RbacAuthorizationV1Api(api)
    role = rbac.read_cluster_role("system:service-account-issuer-discovery")
    binding = rbac.read_cluster_role_binding("system:service-account-issuer-discovery")

    assert set(role.rules[0].non_resource_urls) == {
        "/.well-known/openid-configuration",
        "/.well-known/openid-configuration/",
        "/openid/v1/jwks",
        "/openid/v1/jwks/",
    }
    assert role.rules[0].verbs == ["get"]
    assert [(s.kind, s.name) for s in binding.subjects] == [("Group", "system:serviceaccounts")]


@pytest.fixture
def own_devcluster(tmp_path: pathlib.Path) -> Iterator[RunningDevCluster]:
    """A server of this test's own: rotation and restarts change its keys."""
    with running_devcluster(tmp_path / "state") as cluster:
        yield cluster


def test_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(
    own_devcluster: RunningDevCluster,
) -> None:
    cluster = own_devcluster
    with cluster.api_client() as client:
        _account(kubernetes.client.CoreV1Api(client), "default")
    old_token = cluster.service_account_token("default", "robot")
    old_kid = jwt.get_unverified_header(old_token)["kid"]

    new_kid = _rotate(cluster)
    new_token = cluster.service_account_token("default", "robot")
    jwks = _jwks(cluster, new_token)

    assert new_kid != old_kid
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert {old_kid, new_kid} <= {key["kid"] for key in jwks["keys"]}
    assert _verify(old_token, jwks)["sub"] == "system:serviceaccount:default:robot"
    assert _verify(new_token, jwks)["sub"] == "system:serviceaccount:default:robot"
    assert _authenticates(cluster, old_token)
    assert _authenticates(cluster, new_token)
    # The same claims and kid, signed by a key the issuer never had: refused.
    forged = jwt.encode(
        _verify(new_token, jwks),
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": new_kid},
    )
    assert not _authenticates(cluster, forged)

    cluster.restart()  # the keys are kept in the pki dir, the private one 0600

    pki = cluster.state_dir / "pki"
    assert (pki / "sa.key").stat().st_mode & 0o777 == 0o600
    for token in (old_token, new_token, cluster.admin_token):
        assert _authenticates(cluster, token)
    assert {old_kid, new_kid} <= {key["kid"] for key in _jwks(cluster, new_token)["keys"]}
    after_restart = cluster.service_account_token("default", "robot")
    assert jwt.get_unverified_header(after_restart)["kid"] == new_kid


def test_an_old_hs256_key_file_is_replaced(tmp_path: pathlib.Path) -> None:
    pki = tmp_path / "state" / "pki"
    pki.mkdir(parents=True)
    (pki / "sa.key").write_text("an-old-hs256-shared-secret")

    with running_devcluster(tmp_path / "state") as cluster:
        with cluster.api_client() as client:
            _account(kubernetes.client.CoreV1Api(client), "default")
        token = cluster.service_account_token("default", "robot")
        claims = _verify(token, _jwks(cluster, token))

    assert claims["sub"] == "system:serviceaccount:default:robot"
    assert "BEGIN PRIVATE KEY" in (pki / "sa.key").read_text()
