"""Generate the Secrets the cluster needs and git never holds (`make secrets`).

- token-srv-jwt-keys (key keys.yaml): `jwt: {keys: [{kid, alg, private_key_pem}]}`,
  a fresh Ed25519 key; the first key signs, all verify.
- user-srv-bootstrap (key bootstrap.yaml): `bootstrap_users: [{user_name, password, role}]`,
  an `admin` user with a random password printed once; with --dev the demo user
  thangn/123456 of the original guide instead (what `make run` uses).
- admin-srv-device-key (key device-key.yaml): `device_tokens: {key: ...}`, the HMAC key
  that signs device tokens, shared by every admin-srv replica.
- <svc>-database (key database.yaml): `database: {url: ...}` for user-srv, token-srv and
  device-srv, so that all replicas of a service share one database. For a cluster:
  postgresql+asyncpg://<svc role>:<password>@postgres:5432/<svc db>, with the Secret
  `postgres` (the superuser's and each service role's password) that the StatefulSet in
  .k8s/postgres.yaml reads; with --dev: a SQLite file per service in one host folder
  (--data-dir, default <out>/../data), since the devcluster runs pods as local processes.

Each Secret is one manifest file (mode 0600) in --out, applied by `make deploy` (or by
the devcluster runner). An existing file is kept, so tokens stay valid and the printed
password stays true; --force replaces it, --rotate-jwt puts a new signing key in front
of the existing ones (old tokens keep verifying until they expire).
"""

from __future__ import annotations

import argparse
import base64
import datetime
import hashlib
import os
import secrets
import sys
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

NAMESPACE = "go-micro"
JWT_KEYS_NAME = "token-srv-jwt-keys"
BOOTSTRAP_NAME = "user-srv-bootstrap"
DEVICE_KEY_NAME = "admin-srv-device-key"
DEV_USER = {"user_name": "thangn", "password": "123456", "role": "admin"}
DATABASE_SERVICES = ("user-srv", "token-srv", "device-srv")
POSTGRES_NAME = "postgres"
POSTGRES_HOST = "postgres:5432"


def new_jwt_key(today: datetime.date) -> dict[str, str]:
    """An Ed25519 signing key; the kid carries the date and a public-key fingerprint."""
    key = Ed25519PrivateKey.generate()
    public_raw = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    fingerprint = hashlib.sha256(public_raw).hexdigest()[:8]
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "kid": f"ed25519-{today:%Y%m%d}-{fingerprint}",
        "alg": "EdDSA",
        "private_key_pem": pem,
    }


def secret_manifest(name: str, app: str, namespace: str, data: dict[str, str]) -> dict[str, Any]:
    """A v1 Secret, its data base64-encoded as the API stores it."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
        "type": "Opaque",
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def secret_data(path: Path) -> dict[str, str]:
    """The decoded data of the Secret manifest at `path`."""
    data: dict[str, str] = yaml.safe_load(path.read_text())["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def write_private(path: Path, manifest: dict[str, Any]) -> None:
    """Write a manifest readable by its owner only, never briefly world-readable."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        yaml.safe_dump(manifest, out, sort_keys=False)
    path.chmod(0o600)


def make_jwt_secret(out: Path, namespace: str, *, force: bool, rotate: bool) -> str:
    path = out / f"{JWT_KEYS_NAME}.yaml"
    existing: list[dict[str, str]] = []
    if path.exists():
        if not (force or rotate):
            return f"kept {path}"
        if rotate:
            existing = list(yaml.safe_load(secret_data(path)["keys.yaml"])["jwt"]["keys"])
    keys = [new_jwt_key(datetime.datetime.now(datetime.UTC).date()), *existing]
    content = yaml.safe_dump({"jwt": {"keys": keys}}, sort_keys=False)
    manifest = secret_manifest(JWT_KEYS_NAME, "token-srv", namespace, {"keys.yaml": content})
    write_private(path, manifest)
    return f"wrote {path} (signing kid {keys[0]['kid']}, {len(keys)} key(s))"


def make_bootstrap_secret(out: Path, namespace: str, *, dev: bool, force: bool) -> str:
    path = out / f"{BOOTSTRAP_NAME}.yaml"
    if path.exists() and not force:
        return f"kept {path}"
    if dev:
        user = dict(DEV_USER)
        shown = f"the dev user {user['user_name']}/{user['password']}"
    else:
        user = {"user_name": "admin", "password": secrets.token_urlsafe(18), "role": "admin"}
        shown = (
            f"user 'admin', password '{user['password']}' "
            "(shown this once; rerunning keeps it, --force replaces it)"
        )
    content = yaml.safe_dump({"bootstrap_users": [user]}, sort_keys=False)
    write_private(
        path, secret_manifest(BOOTSTRAP_NAME, "user-srv", namespace, {"bootstrap.yaml": content})
    )
    return f"wrote {path}: {shown}"


def make_device_key_secret(out: Path, namespace: str, *, force: bool) -> str:
    """A fresh HMAC key; kept when it exists, since a new key makes every device unknown."""
    path = out / f"{DEVICE_KEY_NAME}.yaml"
    if path.exists() and not force:
        return f"kept {path}"
    content = yaml.safe_dump({"device_tokens": {"key": secrets.token_urlsafe(32)}})
    write_private(
        path, secret_manifest(DEVICE_KEY_NAME, "admin-srv", namespace, {"device-key.yaml": content})
    )
    return f"wrote {path}"


def password_key(service: str) -> str:
    """The key of a service role's password in the Secret postgres: USER_SRV_PASSWORD."""
    return f"{service.replace('-', '_').upper()}_PASSWORD"


def make_postgres_secret(out: Path, namespace: str, *, force: bool) -> dict[str, str]:
    """The Secret postgres (kept when it exists): returns its passwords by key."""
    path = out / f"{POSTGRES_NAME}.yaml"
    if path.exists() and not force:
        return secret_data(path)
    keys = ["POSTGRES_PASSWORD", *(password_key(s) for s in DATABASE_SERVICES)]
    passwords = {key: secrets.token_urlsafe(24) for key in keys}
    write_private(path, secret_manifest(POSTGRES_NAME, POSTGRES_NAME, namespace, passwords))
    return passwords


def database_url(service: str, *, passwords: dict[str, str] | None, data_dir: Path) -> str:
    """PostgreSQL with the service's own role and database, or (dev) a shared SQLite file."""
    if passwords is None:
        return f"sqlite+aiosqlite:///{(data_dir / f'{service}.db').resolve()}"
    role = service.replace("-", "_")
    return f"postgresql+asyncpg://{role}:{passwords[password_key(role)]}@{POSTGRES_HOST}/{role}"


def make_database_secrets(
    out: Path, namespace: str, *, dev: bool, force: bool, data_dir: Path
) -> list[str]:
    passwords = None if dev else make_postgres_secret(out, namespace, force=force)
    lines = []
    for service in DATABASE_SERVICES:
        path = out / f"{service}-database.yaml"
        if path.exists() and not force:
            lines.append(f"kept {path}")
            continue
        url = database_url(service, passwords=passwords, data_dir=data_dir)
        content = yaml.safe_dump({"database": {"url": url}}, sort_keys=False)
        manifest = secret_manifest(
            f"{service}-database", service, namespace, {"database.yaml": content}
        )
        write_private(path, manifest)
        where = "a SQLite file in " + str(data_dir.resolve()) if dev else "PostgreSQL"
        lines.append(f"wrote {path} ({where})")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the manifests")
    parser.add_argument("--namespace", default=NAMESPACE)
    parser.add_argument("--dev", action="store_true", help="the demo user thangn/123456")
    parser.add_argument("--force", action="store_true", help="replace existing Secrets")
    parser.add_argument(
        "--rotate-jwt", action="store_true", help="add a new signing key before the old ones"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="with --dev: the folder of the shared SQLite files (default <out>/../data)",
    )
    args = parser.parse_args(argv)
    data_dir = args.data_dir or args.out.resolve().parent / "data"
    print(make_jwt_secret(args.out, args.namespace, force=args.force, rotate=args.rotate_jwt))
    print(make_bootstrap_secret(args.out, args.namespace, dev=args.dev, force=args.force))
    print(make_device_key_secret(args.out, args.namespace, force=args.force))
    for line in make_database_secrets(
        args.out, args.namespace, dev=args.dev, force=args.force, data_dir=data_dir
    ):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
