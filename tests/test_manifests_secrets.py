"""`make secrets`: the Secrets git never holds, generated valid for the API and the services."""

from __future__ import annotations

import base64
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from admin_srv.config import AdminSrvConfig
from device_srv.config import DeviceSrvConfig
from micro.config.model import ServiceConfig
from token_srv.config import TokenSrvConfig
from user_srv.config import UserSrvConfig

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_secrets.py"


def make_secrets(out: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def manifest(out: Path, name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((out / f"{name}.yaml").read_text())
    return document


def payload(out: Path, name: str, key: str) -> Any:
    return yaml.safe_load(base64.b64decode(manifest(out, name)["data"][key]))


def test_generated_secrets_are_valid_private_manifests(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    make_secrets(out)
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    for name, app in (("token-srv-jwt-keys", "token-srv"), ("user-srv-bootstrap", "user-srv")):
        path = out / f"{name}.yaml"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        secret = manifest(out, name)
        kubernetes_validate.validate(secret, kubernetes_validate.latest_version(), strict=True)
        assert secret["metadata"] == {"name": name, "namespace": "go-micro", "labels": {"app": app}}


def test_jwt_key_is_a_fresh_ed25519_key_token_srv_accepts(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    make_secrets(first)
    make_secrets(second)
    keys = payload(first, "token-srv-jwt-keys", "keys.yaml")["jwt"]["keys"]
    (key,) = keys
    assert key["alg"] == "EdDSA"
    private = serialization.load_pem_private_key(key["private_key_pem"].encode(), password=None)
    assert isinstance(private, Ed25519PrivateKey)
    other = payload(second, "token-srv-jwt-keys", "keys.yaml")["jwt"]["keys"][0]
    assert other["private_key_pem"] != key["private_key_pem"]
    assert other["kid"] != key["kid"]
    config = TokenSrvConfig.model_validate(payload(first, "token-srv-jwt-keys", "keys.yaml"))
    assert [k.kid for k in config.jwt.keys] == [key["kid"]]


def test_rotation_puts_a_new_signing_key_first_and_keeps_the_old(tmp_path: Path) -> None:
    make_secrets(tmp_path)
    before = payload(tmp_path, "token-srv-jwt-keys", "keys.yaml")["jwt"]["keys"]
    make_secrets(tmp_path, "--rotate-jwt")
    after = payload(tmp_path, "token-srv-jwt-keys", "keys.yaml")["jwt"]["keys"]
    assert len(after) == 2
    assert after[1] == before[0]
    assert after[0]["kid"] != before[0]["kid"]
    TokenSrvConfig.model_validate({"jwt": {"keys": after}})


def test_bootstrap_admin_password_is_random_shown_once_and_kept(tmp_path: Path) -> None:
    printed = make_secrets(tmp_path)
    (user,) = payload(tmp_path, "user-srv-bootstrap", "bootstrap.yaml")["bootstrap_users"]
    assert user["user_name"] == "admin"
    assert user["role"] == "admin"
    assert len(user["password"]) >= 20
    assert user["password"] in printed
    config = UserSrvConfig.model_validate({"bootstrap_users": [user]})
    assert config.bootstrap_users[0].password.get_secret_value() == user["password"]
    again = make_secrets(tmp_path)
    assert user["password"] not in again
    assert payload(tmp_path, "user-srv-bootstrap", "bootstrap.yaml")["bootstrap_users"] == [user]
    make_secrets(tmp_path, "--force")
    replaced = payload(tmp_path, "user-srv-bootstrap", "bootstrap.yaml")["bootstrap_users"][0]
    assert replaced["password"] != user["password"]


def test_dev_flavour_holds_the_demo_user(tmp_path: Path) -> None:
    make_secrets(tmp_path, "--dev")
    users = payload(tmp_path, "user-srv-bootstrap", "bootstrap.yaml")["bootstrap_users"]
    assert [(u["user_name"], u["password"]) for u in users] == [("thangn", "123456")]


def test_device_key_is_random_kept_and_admin_srv_accepts_it(tmp_path: Path) -> None:
    make_secrets(tmp_path / "a")
    make_secrets(tmp_path / "b")
    secret = manifest(tmp_path / "a", "admin-srv-device-key")
    kubernetes_validate.validate(secret, kubernetes_validate.latest_version(), strict=True)
    keys = [payload(tmp_path / d, "admin-srv-device-key", "device-key.yaml") for d in "ab"]
    config = AdminSrvConfig.model_validate(keys[0])
    assert config.device_tokens.key is not None
    assert keys[0] != keys[1]
    make_secrets(tmp_path / "a")
    assert payload(tmp_path / "a", "admin-srv-device-key", "device-key.yaml") == keys[0]


DATABASE_MODELS: dict[str, type[ServiceConfig]] = {
    "user-srv": UserSrvConfig,
    "token-srv": TokenSrvConfig,
    "device-srv": DeviceSrvConfig,
}


def database_urls(out: Path) -> dict[str, str]:
    """Each service's database URL, validated by that service's own config model."""
    urls = {}
    for service, model in DATABASE_MODELS.items():
        secret = manifest(out, f"{service}-database")
        kubernetes_validate.validate(secret, kubernetes_validate.latest_version(), strict=True)
        assert secret["metadata"]["labels"] == {"app": service}
        config: Any = model.model_validate(payload(out, f"{service}-database", "database.yaml"))
        url = config.database.url  # a SecretStr for user-srv and token-srv
        urls[service] = url if isinstance(url, str) else url.get_secret_value()
    return urls


def test_dev_databases_are_shared_sqlite_files_in_one_host_folder(tmp_path: Path) -> None:
    out = tmp_path / "devcluster" / "secrets"
    make_secrets(out, "--dev")
    data = (tmp_path / "devcluster" / "data").resolve()
    assert database_urls(out) == {
        service: f"sqlite+aiosqlite:///{data}/{service}.db" for service in DATABASE_MODELS
    }
    assert not (out / "postgres.yaml").exists()
    make_secrets(out, "--dev", "--force", "--data-dir", str(tmp_path / "elsewhere"))
    assert database_urls(out)["user-srv"].endswith(f"{tmp_path}/elsewhere/user-srv.db")


def test_cluster_databases_are_postgres_roles_whose_passwords_postgres_holds(
    tmp_path: Path,
) -> None:
    make_secrets(tmp_path)
    postgres = manifest(tmp_path, "postgres")
    kubernetes_validate.validate(postgres, kubernetes_validate.latest_version(), strict=True)
    passwords = {k: base64.b64decode(v).decode() for k, v in postgres["data"].items()}
    assert sorted(passwords) == [
        "DEVICE_SRV_PASSWORD",
        "POSTGRES_PASSWORD",
        "TOKEN_SRV_PASSWORD",
        "USER_SRV_PASSWORD",
    ]
    assert len(set(passwords.values())) == 4
    urls = database_urls(tmp_path)
    for service, url in urls.items():
        role = service.replace("-", "_")
        password = passwords[f"{role.upper()}_PASSWORD"]
        assert url == f"postgresql+asyncpg://{role}:{password}@postgres:5432/{role}"
    make_secrets(tmp_path)  # kept: the database was initialised with these passwords
    assert database_urls(tmp_path) == urls


@pytest.mark.parametrize(
    ("variables", "expected"),
    [((), "--out .k8s-secrets"), (("DEV=1",), "--dev --out .devcluster/secrets")],
)
def test_make_secrets_target(repo_root: Path, variables: tuple[str, ...], expected: str) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "secrets", *variables],
        cwd=repo_root,
        capture_output=True,
        text=True,
        check=True,
    )
    command = " ".join(result.stdout.replace("\\\n", " ").split())
    assert f"python scripts/make_secrets.py {expected}" in command


def test_secret_folders_are_ignored_by_git(repo_root: Path) -> None:
    for folder in (".k8s-secrets/x.yaml", ".devcluster/secrets/x.yaml"):
        result = subprocess.run(["git", "check-ignore", "-q", folder], cwd=repo_root, check=False)
        assert result.returncode == 0, f"{folder} is not git-ignored"
