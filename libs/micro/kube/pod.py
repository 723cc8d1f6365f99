"""Which Pod this process runs in."""

from __future__ import annotations

import os

from micro.kube.client import KubeSetupError, service_account_dir


def own_namespace() -> str:
    """The namespace of this process's Pod: POD_NAMESPACE (downward API), else the
    service-account namespace file."""
    namespace = os.environ.get("POD_NAMESPACE", "")
    if not namespace:
        namespace_file = service_account_dir() / "namespace"
        try:
            namespace = namespace_file.read_text().strip()
        except OSError as error:
            raise KubeSetupError(
                f"own pod: set POD_NAMESPACE or provide {namespace_file} ({error.strerror})"
            ) from error
    if not namespace:
        raise KubeSetupError("own pod: the namespace is empty")
    return namespace


def own_pod() -> tuple[str, str]:
    """(namespace, name) of the Pod this process runs in.

    The name comes from POD_NAME (downward API) or HOSTNAME (which the kubelet sets to
    the pod name); the namespace from own_namespace().
    """
    name = os.environ.get("POD_NAME") or os.environ.get("HOSTNAME") or ""
    if not name:
        raise KubeSetupError("own pod: set POD_NAME (downward API) or HOSTNAME")
    return own_namespace(), name
