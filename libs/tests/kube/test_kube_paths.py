"""container_path: a manifest path, under the devcluster's container root or as is."""

from __future__ import annotations

from pathlib import Path

import pytest

from micro.kube import container_path, service_account_dir


def test_outside_the_devcluster_the_path_is_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEVCLUSTER_ROOT", raising=False)
    assert container_path("/var/run/secrets/micro/identity") == Path(
        "/var/run/secrets/micro/identity"
    )


def test_in_a_devcluster_pod_the_path_is_under_its_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DEVCLUSTER_ROOT", str(tmp_path))
    token = container_path("/var/run/secrets/micro/identity/go-micro.token-srv")
    assert token == tmp_path / "var/run/secrets/micro/identity/go-micro.token-srv"
    token.parent.mkdir(parents=True)
    token.write_text("written where the kubelet writes it")
    assert token.read_text() == "written where the kubelet writes it"


def test_the_service_account_folder_follows_the_root_unless_overridden(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("KUBE_SERVICEACCOUNT_DIR", raising=False)
    monkeypatch.setenv("DEVCLUSTER_ROOT", str(tmp_path))
    assert service_account_dir() == tmp_path / "var/run/secrets/kubernetes.io/serviceaccount"
    monkeypatch.setenv("KUBE_SERVICEACCOUNT_DIR", str(tmp_path / "elsewhere"))
    assert service_account_dir() == tmp_path / "elsewhere"
