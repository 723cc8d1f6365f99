"""token-srv's use cases on a real SQLite file: issuing, refusing, rotating, revoking."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import pathlib
import time
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from pydantic import SecretStr, ValidationError

from micro.errors import ServiceError
from token_srv.config import JwtConfig, JwtKeyConfig
from token_srv.domain import Subject
from token_srv.keys import KeyRing
from token_srv.repository import SqlTokenRepository
from token_srv.usecases import JwtSettings, JwtSettingsHolder, TokenUseCases

from .conftest import jwt_config

THANGN = Subject(user_id="1", user_name="thangn")


async def refused(usecases: TokenUseCases, token: str) -> str:
    with pytest.raises(ServiceError) as caught:
        await usecases.verify(token)
    assert caught.value.code is grpc.StatusCode.UNAUTHENTICATED
    return caught.value.message


def claims_of(token: str) -> dict[str, Any]:
    return jwt.decode(token, options={"verify_signature": False})


async def test_access_token_carries_the_claims(usecases: TokenUseCases) -> None:
    pair = await usecases.generate(THANGN)

    claims = await usecases.verify(pair.access_token)

    assert claims["sub"] == "thangn"
    assert claims["uid"] == "1"
    assert claims["user_name"] == "thangn"
    assert claims["platform"] == "TOKEN_PLATFORM_WEB"
    assert claims["role"] == "user"
    assert claims["iss"] == "go-micro.token-srv"
    assert claims["aud"] == ["go-micro"]
    assert claims["exp"] - claims["iat"] == 15 * 60 == pair.expires_in
    assert claims["nbf"] == claims["iat"]
    assert len(claims["jti"]) == 32
    assert jwt.get_unverified_header(pair.access_token) == {
        "alg": "EdDSA",
        "kid": "k1",
        "typ": "JWT",
    }


async def test_alg_none_is_refused(usecases: TokenUseCases) -> None:
    claims = claims_of((await usecases.generate(THANGN)).access_token)
    token = jwt.encode(claims, "", algorithm="none", headers={"kid": "k1"})

    assert "invalid" in await refused(usecases, token)


async def test_hs256_signed_with_the_public_key_is_refused(
    usecases: TokenUseCases, settings: JwtSettings
) -> None:
    claims = claims_of((await usecases.generate(THANGN)).access_token)
    public_pem = settings.keys.signing.verifying_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # pyjwt itself refuses PEM keys as HMAC secrets, so sign by hand as an attacker would.
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","kid":"k1","typ":"JWT"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    signature = hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    token = b".".join([header, body, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()

    assert "invalid" in await refused(usecases, token)


async def test_expired_token_is_refused(
    repository: SqlTokenRepository, settings: JwtSettings
) -> None:
    past = TokenUseCases(repository, lambda: settings, clock=lambda: time.time() - 3600)
    token = (await past.generate(THANGN)).access_token

    assert await refused(past, token) == "token: expired"


async def test_token_not_yet_valid_is_refused(
    repository: SqlTokenRepository, settings: JwtSettings
) -> None:
    future = TokenUseCases(repository, lambda: settings, clock=lambda: time.time() + 600)
    token = (await future.generate(THANGN)).access_token

    assert await refused(future, token) == "token: not valid yet"


async def test_wrong_issuer_and_audience_are_refused(
    repository: SqlTokenRepository, settings: JwtSettings, tmp_path: pathlib.Path
) -> None:
    token = (await TokenUseCases(repository, lambda: settings).generate(THANGN)).access_token
    other_iss = JwtSettings(settings.cfg.model_copy(update={"issuer": "elsewhere"}), settings.keys)
    other_aud = JwtSettings(settings.cfg.model_copy(update={"audience": ("other",)}), settings.keys)

    assert (
        await refused(TokenUseCases(repository, lambda: other_iss), token) == "token: wrong issuer"
    )
    assert (
        await refused(TokenUseCases(repository, lambda: other_aud), token)
        == "token: wrong audience"
    )


async def test_tampered_payload_is_refused(usecases: TokenUseCases) -> None:
    header, _, signature = (await usecases.generate(THANGN)).access_token.split(".")
    claims = claims_of((await usecases.generate(THANGN)).access_token)
    claims["role"] = "admin"
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    assert await refused(usecases, f"{header}.{body}.{signature}") == "token: bad signature"


async def test_unknown_kid_is_refused(
    repository: SqlTokenRepository, usecases: TokenUseCases, tmp_path: pathlib.Path
) -> None:
    stranger = TokenUseCases(repository, lambda: JwtSettings.load(jwt_config("k9"), str(tmp_path)))
    token = (await stranger.generate(THANGN)).access_token

    assert await refused(usecases, token) == "token: signed with an unknown key"


async def test_revoked_access_token_is_refused(usecases: TokenUseCases) -> None:
    pair = await usecases.generate(THANGN)

    await usecases.revoke("", pair.access_token)

    assert await refused(usecases, pair.access_token) == "token: revoked"


async def test_every_configured_key_verifies_and_the_first_signs(
    repository: SqlTokenRepository, tmp_path: pathlib.Path
) -> None:
    old = jwt_config("old")
    rotated = JwtConfig(keys=(jwt_config("new").keys[0], old.keys[0]))
    before = TokenUseCases(repository, lambda: JwtSettings.load(old, str(tmp_path)))
    after = TokenUseCases(repository, lambda: JwtSettings.load(rotated, str(tmp_path)))

    old_token = (await before.generate(THANGN)).access_token
    new_token = (await after.generate(THANGN)).access_token

    assert (await after.verify(old_token))["sub"] == "thangn"
    assert jwt.get_unverified_header(new_token)["kid"] == "new"
    assert [k["kid"] for k in after.jwks()] == ["new", "old"]


async def test_refresh_rotates_and_reuse_revokes_the_family(usecases: TokenUseCases) -> None:
    first = await usecases.generate(THANGN)

    second, subject = await usecases.refresh(first.refresh_token)
    assert subject == THANGN
    assert second.refresh_token != first.refresh_token

    with pytest.raises(ServiceError) as reuse:
        await usecases.refresh(first.refresh_token)
    assert "already used" in reuse.value.message
    # The leak detection ended the whole session, the fresh token included.
    with pytest.raises(ServiceError) as after_reuse:
        await usecases.refresh(second.refresh_token)
    assert after_reuse.value.code is grpc.StatusCode.UNAUTHENTICATED


async def test_revoked_refresh_token_is_refused(usecases: TokenUseCases) -> None:
    pair = await usecases.generate(THANGN)

    await usecases.revoke(pair.refresh_token, pair.access_token)
    await usecases.revoke(pair.refresh_token, "")  # twice is fine

    with pytest.raises(ServiceError) as caught:
        await usecases.refresh(pair.refresh_token)
    assert caught.value.field == "refreshToken"


async def test_expired_refresh_token_is_refused(
    repository: SqlTokenRepository, settings: JwtSettings
) -> None:
    long_ago = TokenUseCases(repository, lambda: settings, clock=lambda: time.time() - 30 * 86400)
    pair = await long_ago.generate(THANGN)

    with pytest.raises(ServiceError):
        await TokenUseCases(repository, lambda: settings).refresh(pair.refresh_token)


async def test_refresh_tokens_are_stored_hashed(
    usecases: TokenUseCases, repository: SqlTokenRepository
) -> None:
    pair = await usecases.generate(THANGN)

    assert await repository.find_refresh(pair.refresh_token) is None


@pytest.mark.parametrize(
    ("subject", "field"),
    [
        (Subject("", "thangn"), "userId"),
        (Subject("1", ""), "userName"),
        (Subject("1", "thangn", role="root"), "role"),
        (Subject("1", "thangn", platform="TOKEN_PLATFORM_TV"), "platform"),
    ],
)
async def test_bad_subjects_are_invalid_argument(
    usecases: TokenUseCases, subject: Subject, field: str
) -> None:
    with pytest.raises(ServiceError) as caught:
        await usecases.generate(subject)

    assert caught.value.code is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.field == field


async def test_hs256_reproduces_the_original_token_shape(
    repository: SqlTokenRepository, tmp_path: pathlib.Path
) -> None:
    cfg = JwtConfig(keys=(JwtKeyConfig(kid="hs", alg="HS256", secret=SecretStr("s" * 32)),))
    hs = TokenUseCases(repository, lambda: JwtSettings.load(cfg, str(tmp_path)))

    token = (await hs.generate(THANGN)).access_token

    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    assert (await hs.verify(token))["platform"] == "TOKEN_PLATFORM_WEB"
    assert hs.jwks() == []  # the HMAC secret is never served


async def test_rs256_keys_sign_and_publish_their_modulus(
    repository: SqlTokenRepository, tmp_path: pathlib.Path
) -> None:
    pem = (
        generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    cfg = JwtConfig(keys=(JwtKeyConfig(kid="rsa", alg="RS256", private_key_pem=SecretStr(pem)),))
    rs = TokenUseCases(repository, lambda: JwtSettings.load(cfg, str(tmp_path)))

    token = (await rs.generate(THANGN)).access_token

    assert (await rs.verify(token))["sub"] == "thangn"
    assert rs.jwks()[0]["kty"] == "RSA"
    assert rs.jwks()[0]["e"] == "AQAB"


def test_bad_keys_are_refused_by_the_config() -> None:
    with pytest.raises(ValidationError, match="not a PEM private key"):
        JwtKeyConfig(kid="x", alg="EdDSA", private_key_pem=SecretStr("nope"))
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        JwtKeyConfig(kid="x", alg="HS256", secret=SecretStr("short"))
    with pytest.raises(ValidationError, match="unique"):
        JwtConfig(keys=(jwt_config("a").keys[0], jwt_config("a").keys[0]))


def test_dev_key_is_generated_once_with_private_mode(tmp_path: pathlib.Path) -> None:
    cfg = JwtConfig(dev_key_file="dev-key.pem")

    first = KeyRing.from_config(cfg, str(tmp_path))
    second = KeyRing.from_config(cfg, str(tmp_path))

    assert first.signing.kid == second.signing.kid
    assert (tmp_path / "dev-key.pem").stat().st_mode & 0o777 == 0o600


def test_no_key_at_all_is_an_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="no signing key"):
        KeyRing.from_config(JwtConfig(), str(tmp_path))


def test_settings_follow_config_changes_and_keep_the_last_good_keys(
    tmp_path: pathlib.Path,
) -> None:
    holder = JwtSettingsHolder(JwtSettings.load(jwt_config("old"), str(tmp_path)))
    first = holder()

    rotated = JwtConfig(keys=(jwt_config("new").keys[0], first.cfg.keys[0]))
    holder.current = JwtSettings.load(rotated, str(tmp_path))
    assert holder().keys.signing.kid == "new"
    assert holder().keys.verifying_key("old") is not None

    with pytest.raises(ValueError, match="no signing key"):
        holder.current = JwtSettings.load(JwtConfig(), str(tmp_path))
    assert holder().keys.signing.kid == "new"
