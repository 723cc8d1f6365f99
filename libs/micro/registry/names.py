"""Service names: the registry name ("go-micro.user-srv") and the short name ("user-srv")
that names the Kubernetes objects, the package and the SQLite file, written once here."""

from __future__ import annotations

REGISTRY_PREFIX = "go-micro."


def short_name(service_name: str) -> str:
    """ "go-micro.user-srv" -> "user-srv": Kubernetes names cannot contain dots."""
    return service_name.rsplit(".", 1)[-1]


def registry_name(short: str) -> str:
    """ "user-srv" -> "go-micro.user-srv"."""
    return f"{REGISTRY_PREFIX}{short}"


def proto_service_registry_name(full_name: str) -> str:
    """The registry name of a proto service from its package's first part:
    "user_srv.v1.UserService" -> "go-micro.user-srv"."""
    return registry_name(full_name.split(".", 1)[0].replace("_", "-"))
