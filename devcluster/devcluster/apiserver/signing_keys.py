"""The service-account issuer's keys: ES256 signing, verification, rotation, and the JWKS.

Stored in the pki dir as kube-apiserver takes them: `sa.key` is the current private key
(--service-account-signing-key-file, 0600) and `sa.pub` every public key tokens may
still be signed with, current first (--service-account-key-file). A `kid` is kube's:
base64url(SHA-256(DER SubjectPublicKeyInfo)), so a verifier picks the key from the header.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import pathlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

ALGORITHM = "ES256"
COORDINATE_BYTES = 32  # P-256
PRIVATE_FILE = "sa.key"
PUBLIC_FILE = "sa.pub"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(public: ec.EllipticCurvePublicKey) -> str:
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return b64url(hashlib.sha256(der).digest())


def jwk(public: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public.public_numbers()
    return {
        "use": "sig",
        "kty": "EC",
        "kid": key_id(public),
        "crv": "P-256",
        "alg": ALGORITHM,
        "x": b64url(numbers.x.to_bytes(COORDINATE_BYTES, "big")),
        "y": b64url(numbers.y.to_bytes(COORDINATE_BYTES, "big")),
    }


def _write(path: pathlib.Path, data: bytes, mode: int) -> None:
    """Write-then-rename, created with its final mode (a key is never world-readable)."""
    temporary = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(descriptor, "wb") as sink:
        sink.write(data)
    os.replace(temporary, path)


def _load_private(path: pathlib.Path) -> ec.EllipticCurvePrivateKey | None:
    """The stored EC key; None when absent or not one (an older HS256 secret is replaced)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (FileNotFoundError, ValueError, TypeError):
        return None
    return key if isinstance(key, ec.EllipticCurvePrivateKey) else None


def _load_publics(path: pathlib.Path) -> list[ec.EllipticCurvePublicKey]:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return []
    marker = b"-----END PUBLIC KEY-----"
    keys = []
    for block in text.split(marker):
        if b"-----BEGIN PUBLIC KEY-----" not in block:
            continue
        try:
            key = serialization.load_pem_public_key(block + marker)
        except ValueError:
            continue
        if isinstance(key, ec.EllipticCurvePublicKey):
            keys.append(key)
    return keys


def _pem(public: ec.EllipticCurvePublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class SigningKeys:
    """The current signing key and every public key still accepted."""

    def __init__(self, pki_dir: pathlib.Path) -> None:
        self._private_path = pki_dir / PRIVATE_FILE
        self._public_path = pki_dir / PUBLIC_FILE
        private = _load_private(self._private_path)
        if private is None:
            self._private = self._store(ec.generate_private_key(ec.SECP256R1()), previous=[])
        else:
            self._private = private
            self._publics = self._accepted(private, _load_publics(self._public_path))

    @staticmethod
    def _accepted(
        private: ec.EllipticCurvePrivateKey, previous: list[ec.EllipticCurvePublicKey]
    ) -> dict[str, ec.EllipticCurvePublicKey]:
        current = private.public_key()
        keys = {key_id(current): current}
        for public in previous:
            keys.setdefault(key_id(public), public)
        return keys

    def _store(
        self, private: ec.EllipticCurvePrivateKey, previous: list[ec.EllipticCurvePublicKey]
    ) -> ec.EllipticCurvePrivateKey:
        self._publics = self._accepted(private, previous)
        # Public keys first: a crash between the two writes leaves one key too many
        # accepted, never a signing key that no verifier knows.
        _write(self._public_path, b"".join(_pem(k) for k in self._publics.values()), 0o644)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write(self._private_path, pem, 0o600)
        return private

    @property
    def current_kid(self) -> str:
        return key_id(self._private.public_key())

    def rotate(self) -> str:
        """A new signing key; the previous ones stay accepted. Answers the new kid."""
        self._private = self._store(
            ec.generate_private_key(ec.SECP256R1()), list(self._publics.values())
        )
        return self.current_kid

    def jwks(self) -> dict[str, Any]:
        return {"keys": [jwk(public) for public in self._publics.values()]}

    def sign(self, claims: dict[str, Any]) -> str:
        header = {"alg": ALGORITHM, "kid": self.current_kid}
        signing_input = (
            f"{b64url(json.dumps(header, separators=(',', ':')).encode())}."
            f"{b64url(json.dumps(claims, separators=(',', ':')).encode())}"
        )
        r, s = decode_dss_signature(
            self._private.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        raw = r.to_bytes(COORDINATE_BYTES, "big") + s.to_bytes(COORDINATE_BYTES, "big")
        return f"{signing_input}.{b64url(raw)}"

    def verified_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a token signed by one of the accepted keys; None otherwise."""
        try:
            header_part, payload_part, signature_part = token.split(".")
            header = json.loads(unb64url(header_part))
            signature = unb64url(signature_part)
            if not isinstance(header, dict) or header.get("alg") != ALGORITHM:
                return None
            if len(signature) != 2 * COORDINATE_BYTES:
                return None
            kid = header.get("kid")
            candidates = [self._publics[kid]] if kid in self._publics else []
            der = encode_dss_signature(
                int.from_bytes(signature[:COORDINATE_BYTES], "big"),
                int.from_bytes(signature[COORDINATE_BYTES:], "big"),
            )
            for public in candidates:
                try:
                    public.verify(
                        der, f"{header_part}.{payload_part}".encode(), ec.ECDSA(hashes.SHA256())
                    )
                except InvalidSignature:
                    continue
                claims = json.loads(unb64url(payload_part))
                return claims if isinstance(claims, dict) else None
        except (ValueError, UnicodeDecodeError):
            return None
        return None
