"""Service names: the registry name ("go-micro.user-srv") and the short name ("user-srv")
that names the Kubernetes objects, the package and the SQLite file, written once here and
derived from the package (user_srv), never typed."""

from __future__ import annotations

REGISTRY_PREFIX = "go-micro."


def short_name(service_name: str) -> str:
    """ "go-micro.user-srv" -> "user-srv": Kubernetes names cannot contain dots."""
    return service_name.rsplit(".", 1)[-1]


def registry_name(short: str) -> str:
    """ "user-srv" -> "go-micro.user-srv"."""
    return f"{REGISTRY_PREFIX}{short}"


def package_registry_name(dotted: str) -> str:
    """The registry name of whatever lives in a service's package, from the package's
    name: "user_srv.v1.UserService" (a proto service) or "user_srv.service" (a module)
    -> "go-micro.user-srv"."""
    return registry_name(dotted.split(".", 1)[0].replace("_", "-"))
