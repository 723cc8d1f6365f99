"""kube_client and own_pod: where the API is and which Pod this is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes.client
import pytest

from devcluster.testing import RunningDevCluster
from micro.config.model import KubernetesConfig
from micro.kube import KubeSetupError, kube_client, own_namespace, own_pod


@pytest.fixture
def outside_a_cluster(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("KUBE_SERVICEACCOUNT_DIR", "KUBERNETES_SERVICE_HOST", "POD_NAME", "POD_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.delenv("KUBECONFIG", raising=False)
    return tmp_path


def version_of(api: kubernetes.client.ApiClient) -> Any:
    try:
        return kubernetes.client.CoreV1Api(api).list_namespace()
    finally:
        api.close()  # type: ignore[no-untyped-call]


def test_a_kubeconfig_file_is_used(
    outside_a_cluster: Path, registry_cluster: RunningDevCluster
) -> None:
    api = kube_client(KubernetesConfig(kubeconfig=str(registry_cluster.kubeconfig)))
    assert api.configuration.host == registry_cluster.url
    assert version_of(api).items is not None  # HTTPS with the CA and the admin token


def test_master_url_replaces_the_kubeconfig_server(
    outside_a_cluster: Path, registry_cluster: RunningDevCluster
) -> None:
    url = f"https://localhost:{registry_cluster.port}"
    api = kube_client(KubernetesConfig(kubeconfig=str(registry_cluster.kubeconfig), master_url=url))
    assert api.configuration.host == url
    api.close()  # type: ignore[no-untyped-call]


def test_a_bare_master_url_is_used_without_credentials(outside_a_cluster: Path) -> None:
    api = kube_client(KubernetesConfig(master_url="http://127.0.0.1:8001"))
    assert api.configuration.host == "http://127.0.0.1:8001"
    api.close()  # type: ignore[no-untyped-call]


def test_nothing_configured_says_what_is_missing(outside_a_cluster: Path) -> None:
    with pytest.raises(KubeSetupError, match="no Kubernetes API configured"):
        kube_client(KubernetesConfig())


def test_a_missing_kubeconfig_is_named(outside_a_cluster: Path) -> None:
    with pytest.raises(KubeSetupError, match=r"nope\.yaml"):
        kube_client(KubernetesConfig(kubeconfig=str(outside_a_cluster / "nope.yaml")))


def test_in_cluster_files_must_exist(
    outside_a_cluster: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBE_SERVICEACCOUNT_DIR", str(outside_a_cluster))
    with pytest.raises(KubeSetupError, match="token does not exist"):
        kube_client(KubernetesConfig())


def test_own_pod_from_the_downward_api(
    outside_a_cluster: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POD_NAME", "user-srv-5fc4d67dd5-sm9g4")
    monkeypatch.setenv("POD_NAMESPACE", "go-micro")
    assert own_pod() == ("go-micro", "user-srv-5fc4d67dd5-sm9g4")


def test_own_pod_falls_back_to_hostname_and_the_namespace_file(
    outside_a_cluster: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (outside_a_cluster / "namespace").write_text("go-micro\n")
    monkeypatch.setenv("KUBE_SERVICEACCOUNT_DIR", str(outside_a_cluster))
    monkeypatch.setenv("HOSTNAME", "token-srv-54b8c998f5-zzdhz")
    assert own_pod() == ("go-micro", "token-srv-54b8c998f5-zzdhz")


def test_own_namespace_needs_no_pod_name(
    outside_a_cluster: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (outside_a_cluster / "namespace").write_text("go-micro\n")
    monkeypatch.setenv("KUBE_SERVICEACCOUNT_DIR", str(outside_a_cluster))
    monkeypatch.delenv("HOSTNAME", raising=False)
    assert own_namespace() == "go-micro"
    with pytest.raises(KubeSetupError, match="POD_NAME"):
        own_pod()
    monkeypatch.setenv("POD_NAMESPACE", "from-the-downward-api")
    assert own_namespace() == "from-the-downward-api"


def test_own_pod_without_a_namespace_says_where_it_looked(
    outside_a_cluster: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBE_SERVICEACCOUNT_DIR", str(outside_a_cluster))
    monkeypatch.setenv("POD_NAME", "p")
    with pytest.raises(KubeSetupError, match="POD_NAMESPACE"):
        own_pod()
