"""Fixtures shared by the whole-system tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .cluster_system import SERVICES, System, running_system

# --- Shipping: images and the .k8s manifests ------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_SERVICES = SERVICES
# The Secrets each service owns, the only ones its Role lets it read (by name); a
# service not named here owns none.
SECRETS_OWNED_BY = {
    "token-srv": frozenset({"token-srv-jwt-keys", "token-srv-database"}),
    "user-srv": frozenset({"user-srv-bootstrap", "user-srv-database"}),
    "device-srv": frozenset({"device-srv-database"}),
    "admin-srv": frozenset({"admin-srv-device-key"}),
}
OWN_SECRETS = {s: SECRETS_OWNED_BY.get(s, frozenset[str]()) for s in SHIPPED_SERVICES}
# Who calls whom over gRPC and which methods: the NetworkPolicies, the identity token each
# caller mounts per callee and the callees' allow rules all follow this one call graph.
GRPC_CALLS: dict[tuple[str, str], tuple[str, ...]] = {
    ("admin-srv", "user-srv"): tuple(
        f"user_srv.v1.UserService/{m}"
        for m in ("VerifyPassword", "GetUser", "CreateUser", "ListUsers")
    ),
    ("admin-srv", "token-srv"): tuple(
        f"token_srv.v1.TokenService/{m}"
        for m in (
            "GenerateToken",
            "VerifyToken",
            "RefreshToken",
            "RevokeToken",
            "GetJwks",
            "ListRevocations",
        )
    ),
    ("admin-srv", "device-srv"): ("device_srv.v1.DevSvc/Get",),
    ("data-srv", "device-srv"): ("device_srv.v1.DevSvc/Get",),
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes `shipped_service` runs once per service, named by it, unless it
    names its own services with @pytest.mark.parametrize."""
    own = any(
        "shipped_service" in marker.args[0]
        for marker in metafunc.definition.iter_markers("parametrize")
    )
    if "shipped_service" in metafunc.fixturenames and not own:
        metafunc.parametrize("shipped_service", SHIPPED_SERVICES)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every object in .k8s/*.yaml with its file, in `kubectl apply -f .k8s` order."""
    documents = []
    for path in sorted((REPO_ROOT / ".k8s").glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document:
                documents.append((path, document))
    return documents


@pytest.fixture(scope="session")
def k8s_objects(k8s_documents: list[tuple[Path, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """The objects by "<Kind>/<name>", e.g. "Deployment/user-srv"."""
    objects: dict[str, dict[str, Any]] = {}
    for path, document in k8s_documents:
        key = f"{document['kind']}/{document['metadata']['name']}"
        assert key not in objects, f"{key} is defined twice (again in {path.name})"
        objects[key] = document
    return objects


# --- The whole system ------------------------------------------------------------------


def uses_the_running_system(item: pytest.Item) -> bool:
    """Whether the test takes the session's `system` below (a module's own is narrower)."""
    info = getattr(item, "_fixtureinfo", None)
    definitions = info.name2fixturedefs.get("system") if info is not None else None
    return definitions is not None and definitions[-1].scope == "session"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests on the running system run last and one after another: it starts for the
    first and stops after the last, instead of idling under the other tests (its pods
    still rotate tokens and answer probes). The sort is stable: their order among
    themselves stays."""
    items.sort(key=uses_the_running_system)


@pytest.fixture(scope="session")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The system from .k8s on the devcluster, started once for every test that needs it:
    the disruption tests leave it as they found it, and the fuzz run (which fails logins
    and creates users) sorts after them."""
    with running_system(tmp_path_factory.mktemp("cluster")) as running:
        yield running
