"""JWT keys, parsed once per config (not per call): the first signs, all verify."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

if TYPE_CHECKING:
    from token_srv.config import JwtConfig, JwtKeyConfig

MIN_RSA_BITS = 2048
MIN_HMAC_BYTES = 32


class InvalidKeyError(ValueError):
    """A configured key that cannot be used."""


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    alg: str
    signing_key: Any = field(repr=False)  # private key object, or the HMAC secret bytes
    verifying_key: Any = field(repr=False)  # public key object, or the HMAC secret bytes

    def jwk(self) -> dict[str, str] | None:
        """The public JWK (RFC 7517); None for HS256, whose key is a secret."""
        base = {"kid": self.kid, "alg": self.alg, "use": "sig"}
        if isinstance(self.verifying_key, Ed25519PublicKey):
            raw = self.verifying_key.public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            return {**base, "kty": "OKP", "crv": "Ed25519", "x": _b64(raw)}
        if isinstance(self.verifying_key, RSAPublicKey):
            numbers = self.verifying_key.public_numbers()
            return {**base, "kty": "RSA", "n": _b64_int(numbers.n), "e": _b64_int(numbers.e)}
        return None


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _b64_int(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))


def load_key(cfg: JwtKeyConfig) -> LoadedKey:
    where = f"jwt.keys[kid={cfg.kid}]"
    if cfg.alg == "HS256":
        secret = cfg.secret.get_secret_value().encode()
        if len(secret) < MIN_HMAC_BYTES:
            raise InvalidKeyError(f"{where}.secret: HS256 needs at least {MIN_HMAC_BYTES} bytes")
        return LoadedKey(cfg.kid, cfg.alg, secret, secret)
    pem = cfg.private_key_pem.get_secret_value().encode()
    if not pem:
        raise InvalidKeyError(f"{where}.private_key_pem: {cfg.alg} needs a PEM private key")
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidKeyError(f"{where}.private_key_pem: not a PEM private key") from exc
    if cfg.alg == "EdDSA" and isinstance(private, Ed25519PrivateKey):
        return LoadedKey(cfg.kid, cfg.alg, private, private.public_key())
    if cfg.alg == "RS256" and isinstance(private, RSAPrivateKey):
        if private.key_size < MIN_RSA_BITS:
            raise InvalidKeyError(f"{where}: RSA keys need at least {MIN_RSA_BITS} bits")
        return LoadedKey(cfg.kid, cfg.alg, private, private.public_key())
    raise InvalidKeyError(f"{where}.private_key_pem: not a key for {cfg.alg}")


def dev_key(path: Path) -> LoadedKey:
    """An Ed25519 key kept in a local file, generated on first use (mode 0600)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
    private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise InvalidKeyError(f"{path}: not an Ed25519 private key")
    public = private.public_key()
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return LoadedKey("dev-" + hashlib.sha256(raw).hexdigest()[:12], "EdDSA", private, public)


class KeyRing:
    def __init__(self, keys: Sequence[LoadedKey]) -> None:
        if not keys:
            raise InvalidKeyError("jwt.keys: no signing key configured (and no jwt.dev_key_file)")
        self.signing = keys[0]
        self._by_kid: Mapping[str, LoadedKey] = {k.kid: k for k in keys}
        self.jwks: list[dict[str, str]] = [j for k in keys if (j := k.jwk()) is not None]

    @classmethod
    def from_config(cls, cfg: JwtConfig, data_dir: str) -> KeyRing:
        if cfg.keys:
            return cls([load_key(k) for k in cfg.keys])
        if cfg.dev_key_file:
            return cls([dev_key(Path(data_dir) / cfg.dev_key_file)])
        return cls([])

    def sign(self, claims: Mapping[str, Any]) -> str:
        key = self.signing
        return jwt.encode(
            dict(claims), key.signing_key, algorithm=key.alg, headers={"kid": key.kid}
        )

    def verifying_key(self, kid: str) -> LoadedKey | None:
        return self._by_kid.get(kid)
