"""JWT verification (micro.auth) and protected methods over real gRPC and HTTP servers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from fastapi import APIRouter, Depends
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.auth import AccessPolicy, JwtVerifier, Principal, require_principal
from micro.errors import ServiceError
from micro.testing.tokens import AUDIENCE, ISSUER, access_claims


class Keys:
    """An Ed25519 and an RSA key pair, and a JWKS provider that counts its calls."""

    def __init__(self) -> None:
        self.ed = ed25519.Ed25519PrivateKey.generate()
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.jwks: list[dict[str, Any]] = [
            {**json.loads(OKPAlgorithm.to_jwk(self.ed.public_key())), "kid": "ed1", "use": "sig"},
            {**json.loads(RSAAlgorithm.to_jwk(self.rsa.public_key())), "kid": "rsa1"},
        ]
        self.fetches = 0

    async def provider(self) -> list[dict[str, Any]]:
        self.fetches += 1
        return list(self.jwks)


def ed_token(keys: Keys, kid: str = "ed1", **override: Any) -> str:
    return jwt.encode(access_claims(**override), keys.ed, algorithm="EdDSA", headers={"kid": kid})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], secret: bytes | None) -> str:
    """A token pyjwt refuses to make: alg none, or HS256 keyed with a public key."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b""
    if secret is not None:
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def verifier(keys: Keys, *algorithms: str) -> JwtVerifier:
    return JwtVerifier(
        keys.provider, algorithms=algorithms or ("EdDSA",), issuer=ISSUER, audience=[AUDIENCE]
    )


async def rejected(v: JwtVerifier, token: str) -> str:
    with pytest.raises(ServiceError) as failure:
        await v.verify(token)
    assert failure.value.code is grpc.StatusCode.UNAUTHENTICATED
    return failure.value.message


async def test_valid_token_answers_the_principal() -> None:
    keys = Keys()
    principal = await verifier(keys).verify(ed_token(keys))
    assert principal == Principal("1", "thangn", "admin", "TOKEN_PLATFORM_WEB", "token-1")
    rs = jwt.encode(access_claims(), keys.rsa, algorithm="RS256", headers={"kid": "rsa1"})
    assert (await verifier(keys, "RS256").verify(rs)).user_id == "1"


async def test_alg_none_is_rejected() -> None:
    keys = Keys()
    token = hand_made({"alg": "none", "kid": "ed1"}, access_claims(), None)
    assert "algorithm 'none'" in await rejected(verifier(keys, "EdDSA", "RS256", "HS256"), token)
    with pytest.raises(ValueError, match="none"):
        verifier(keys, "none")


async def test_hs256_keyed_with_a_public_key_is_rejected() -> None:
    keys = Keys()
    public_pem = keys.rsa.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = hand_made({"alg": "HS256", "kid": "rsa1", "typ": "JWT"}, access_claims(), public_pem)
    # Not allowed at all by an RS256 verifier...
    assert "not accepted" in await rejected(verifier(keys, "RS256"), token)
    # ...and, where HS256 is allowed, never against an RSA key.
    assert "does not fit" in await rejected(verifier(keys, "RS256", "HS256"), token)


@pytest.mark.parametrize(
    ("override", "reason"),
    [
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"iss": "someone-else"}, "wrong issuer"),
        ({"aud": ["other-audience"]}, "wrong audience"),
    ],
)
async def test_claims_are_checked(override: dict[str, Any], reason: str) -> None:
    keys = Keys()
    assert reason in await rejected(verifier(keys), ed_token(keys, **override))


async def test_small_clock_skew_is_tolerated() -> None:
    keys = Keys()
    token = ed_token(keys, nbf=int(time.time()) + 2, exp=int(time.time()) - 2)
    assert (await verifier(keys).verify(token)).user_name == "thangn"


async def test_tampered_token_is_rejected() -> None:
    keys = Keys()
    header, payload, signature = ed_token(keys).split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["role"] = "superuser"
    tampered = f"{header}.{b64(json.dumps(forged).encode())}.{signature}"
    assert "bad signature" in await rejected(verifier(keys), tampered)
    assert "malformed" in await rejected(verifier(keys), "not-a-jwt")


@pytest.mark.parametrize(
    ("header", "named"),
    [
        ({"alg": "EdDSA", "kid": 7}, "Key ID"),
        ({"alg": "EdDSA", "kid": None}, "Key ID"),
        ({"alg": "EdDSA", "kid": {"k": "ed1"}}, "Key ID"),
        ({"alg": "EdDSA", "kid": "ed1", "crit": ["exp"]}, "critical extension"),
        ({"alg": "EdDSA", "kid": "ed1", "crit": "exp"}, "'crit' header"),
        ({"alg": "EdDSA", "kid": "ed1", "crit": []}, "'crit' header"),
    ],
)
async def test_a_header_pyjwt_refuses_is_unauthenticated_naming_why(
    header: dict[str, Any], named: str
) -> None:
    # PyJWT raises InvalidTokenError, not DecodeError, for these: the whole family counts.
    keys = Keys()
    message = await rejected(verifier(keys), hand_made(header, access_claims(), None))
    assert message.startswith("access token: malformed header (")
    assert named in message


async def test_unknown_kid_refetches_once_within_the_rate_limit() -> None:
    keys = Keys()
    v = verifier(keys)
    await v.verify(ed_token(keys))
    assert keys.fetches == 1
    # A key published after the first fetch: the next unknown kid refetches at most
    # once per interval, so a flood of made-up kids cannot hammer the provider.
    assert "unknown key id" in await rejected(v, ed_token(keys, kid="ghost"))
    assert "unknown key id" in await rejected(v, ed_token(keys, kid="ghost2"))
    assert keys.fetches == 1  # the first fetch was just now: rate-limited

    rotated = JwtVerifier(
        keys.provider, algorithms=["EdDSA"], issuer=ISSUER, min_refetch_interval=timedelta(0)
    )
    await rotated.verify(ed_token(keys))
    new_key = ed25519.Ed25519PrivateKey.generate()
    keys.jwks.append({**json.loads(OKPAlgorithm.to_jwk(new_key.public_key())), "kid": "ed2"})
    token = jwt.encode(access_claims(), new_key, algorithm="EdDSA", headers={"kid": "ed2"})
    before = keys.fetches
    assert (await rotated.verify(token)).token_id == "token-1"
    assert keys.fetches == before + 1


async def test_provider_failure_without_keys_is_unavailable() -> None:
    async def broken() -> list[dict[str, Any]]:
        raise ConnectionError("token-srv down")

    v = JwtVerifier(broken, algorithms=["EdDSA"], issuer=ISSUER)
    with pytest.raises(ServiceError) as failure:
        await v.verify(ed_token(Keys()))
    assert failure.value.code is grpc.StatusCode.UNAVAILABLE


def policy_for(keys: Keys, prefix: str, roles: tuple[str, ...] = ()) -> AccessPolicy:
    policy = AccessPolicy()
    policy.protect(prefix, roles=roles)
    policy.verifier = verifier(keys)
    return policy


async def test_protected_grpc_method(start_grpc: Any, grpc_channel_to: Any) -> None:
    keys = Keys()
    server = await start_grpc(policy=policy_for(keys, "echo.v1.EchoService/Echo", ("admin",)))
    stub = echo_pb2_grpc.EchoServiceStub(grpc_channel_to(server))
    whoami = echo_pb2.EchoRequest(text="whoami")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.Echo(whoami)
    assert missing.value.code() is grpc.StatusCode.UNAUTHENTICATED
    bearer = (("authorization", f"Bearer {ed_token(keys)}"),)
    assert (await stub.Echo(whoami, metadata=bearer)).text == "thangn"
    user = (("authorization", f"Bearer {ed_token(keys, role='user')}"),)
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.Echo(whoami, metadata=user)
    assert denied.value.code() is grpc.StatusCode.PERMISSION_DENIED
    # Put is not under the protected prefix.
    assert await stub.Put(echo_pb2.PutRequest(key="k", text="v")) == echo_pb2.PutResponse()


async def test_a_refusal_echoing_an_unpaired_surrogate_still_answers_over_grpc(
    start_grpc: Any, grpc_channel_to: Any
) -> None:
    keys = Keys()
    server = await start_grpc(policy=policy_for(keys, "echo.v1.EchoService"))
    stub = echo_pb2_grpc.EchoServiceStub(grpc_channel_to(server))
    token = hand_made({"alg": "EdDSA", "kid": "ed1", "crit": ["\ud800"]}, access_claims(), None)

    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Echo(
            echo_pb2.EchoRequest(text="x"), metadata=(("authorization", f"Bearer {token}"),)
        )

    # PyJWT names the extension; the message carries it escaped, as UTF-8 can.
    assert failure.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert str(failure.value.details()).endswith("critical extension: \\ud800)")


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as http:
        yield http


async def test_protected_http_path(start_http: Any, client: httpx.AsyncClient) -> None:
    keys = Keys()
    router = APIRouter()

    @router.get("/admin/v1/me")
    async def me(principal: Principal = Depends(require_principal)) -> dict[str, str]:  # noqa: B008
        return {"userName": principal.user_name}

    @router.get("/public")
    async def public(principal: Principal = Depends(require_principal)) -> dict[str, str]:  # noqa: B008
        return {"userName": principal.user_name}

    server = await start_http(router, policy=policy_for(keys, "/admin"))
    base = f"http://127.0.0.1:{server.port}"
    anonymous = await client.get(f"{base}/admin/v1/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["code"] == "UNAUTHENTICATED"
    headers = {"Authorization": f"Bearer {ed_token(keys)}"}
    assert (await client.get(f"{base}/admin/v1/me", headers=headers)).json() == {
        "userName": "thangn"
    }
    expired = {"Authorization": f"Bearer {ed_token(keys, exp=int(time.time()) - 3600)}"}
    assert (await client.get(f"{base}/admin/v1/me", headers=expired)).status_code == 401
    # Outside the protected prefix no principal is set, so the dependency answers 401.
    assert (await client.get(f"{base}/public", headers=headers)).status_code == 401
    assert (await client.get(f"{base}/healthz")).status_code == 200


class OverloadedVerifier:
    """A verifier whose token service asks callers to come back later."""

    async def verify(self, token: str) -> Principal:
        raise ServiceError(
            grpc.StatusCode.UNAVAILABLE, "token-srv is overloaded", retry_after=timedelta(seconds=7)
        )


async def test_a_refusal_by_the_auth_layer_keeps_its_retry_after(
    start_http: Any, client: httpx.AsyncClient
) -> None:
    policy = AccessPolicy()
    policy.protect("/admin")
    policy.verifier = OverloadedVerifier()
    server = await start_http(APIRouter(), policy=policy)

    answer = await client.get(
        f"http://127.0.0.1:{server.port}/admin/v1/me", headers={"Authorization": "Bearer t"}
    )

    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "7"
    assert answer.json() == {"code": "UNAVAILABLE", "message": "token-srv is overloaded"}


def test_prefixes_end_on_a_boundary() -> None:
    policy = AccessPolicy()
    policy.protect("admin_srv.v1.UserService")
    policy.protect("/admin/v1/users", roles=("admin",))
    assert policy.rule_for("/admin_srv.v1.UserService/ListUsers") is not None
    assert policy.rule_for("/admin_srv.v1.UserServiceX/ListUsers") is None
    assert policy.rule_for("/admin/v1/users/7") is not None
    assert policy.rule_for("/admin/v1/usersettings") is None
