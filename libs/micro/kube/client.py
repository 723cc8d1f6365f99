"""Build an official-client ApiClient: in-cluster, from a kubeconfig, or from a URL."""

from __future__ import annotations

import os
import pathlib

import kubernetes.client
import kubernetes.config
from kubernetes.config.incluster_config import InClusterConfigLoader

from micro.config.model import KubernetesConfig
from micro.kube.paths import container_path

DEFAULT_SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


class KubeSetupError(RuntimeError):
    """The Kubernetes API cannot be located or its credentials cannot be read."""


def service_account_dir() -> pathlib.Path:
    """The pod's service-account folder; KUBE_SERVICEACCOUNT_DIR replaces the default."""
    override = os.environ.get("KUBE_SERVICEACCOUNT_DIR")
    return pathlib.Path(override) if override else container_path(DEFAULT_SERVICE_ACCOUNT_DIR)


def _in_cluster_available() -> bool:
    if os.environ.get("KUBE_SERVICEACCOUNT_DIR"):
        return True
    return (
        bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        and (service_account_dir() / "token").is_file()
    )


def _load_in_cluster(configuration: kubernetes.client.Configuration) -> None:
    folder = service_account_dir()
    for needed in ("token", "ca.crt"):
        if not (folder / needed).is_file():
            raise KubeSetupError(f"in-cluster config: {folder / needed} does not exist")
    try:
        # The official loader takes the file names, reads KUBERNETES_SERVICE_HOST/PORT
        # (bracketing IPv6 hosts) and re-reads the rotated token before it expires.
        loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=str(folder / "token"),
            cert_filename=str(folder / "ca.crt"),
            try_refresh_token=True,
            environ=os.environ,
        )
        loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
    except kubernetes.config.ConfigException as error:
        raise KubeSetupError(f"in-cluster config from {folder}: {error}") from error


def kube_client(k8s: KubernetesConfig) -> kubernetes.client.ApiClient:
    """An ApiClient for the API this process should talk to.

    Order: in-cluster (service-account files, KUBE_SERVICEACCOUNT_DIR honoured); else the
    kubeconfig file of k8s.kubeconfig (k8s.master_url, when also set, replaces its server);
    else k8s.master_url alone (no credentials, e.g. `kubectl proxy`); else the default
    kubeconfig ($KUBECONFIG or ~/.kube/config) as the Go example does.
    """
    configuration = kubernetes.client.Configuration()
    if _in_cluster_available():
        _load_in_cluster(configuration)
    elif k8s.kubeconfig:
        _load_kubeconfig(configuration, os.path.expanduser(k8s.kubeconfig))
        if k8s.master_url:
            configuration.host = k8s.master_url
    elif k8s.master_url:
        configuration.host = k8s.master_url
    else:
        default = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        if not os.path.isfile(default.split(os.pathsep)[0]):
            raise KubeSetupError(
                "no Kubernetes API configured: not in a cluster, and neither "
                "k8s.kubeconfig, k8s.master_url nor a default kubeconfig is available"
            )
        _load_kubeconfig(configuration, default)
    return kubernetes.client.ApiClient(configuration)


def _load_kubeconfig(configuration: kubernetes.client.Configuration, path: str) -> None:
    try:
        kubernetes.config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path, client_configuration=configuration
        )
    except (kubernetes.config.ConfigException, OSError) as error:
        raise KubeSetupError(f"kubeconfig {path}: {error}") from error
