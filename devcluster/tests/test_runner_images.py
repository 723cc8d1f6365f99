"""The image map: one pattern entry describes every service image."""

from __future__ import annotations

import pathlib

from devcluster.runner.kubelet.images import DEFAULT_IMAGES_FILE, ImageMap

REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_a_service_image_maps_to_its_package_and_configs() -> None:
    mapped = ImageMap.load().lookup("docker.io/devexps/orders-srv:k8s@sha256:00")
    assert mapped is not None
    assert mapped.command == ["python", "-m", "orders_srv"]
    assert mapped.files == {"/app/orders-srv/configs": REPO_ROOT / "orders-srv" / "configs"}
    root = pathlib.Path("/containers/c1")
    assert mapped.image_env(root)["MICRO_CONFIG_DIR"] == "/containers/c1/app/orders-srv/configs/k8s"


def test_every_service_folder_has_an_image_and_nothing_else_does() -> None:
    images = ImageMap.load(DEFAULT_IMAGES_FILE)
    for folder in REPO_ROOT.glob("*-srv"):
        mapped = images.lookup(f"devexps/{folder.name}:k8s")
        assert mapped is not None, folder.name
        assert mapped.command[-1] == folder.name.replace("-", "_")
    assert images.lookup("devexps/postgres:16") is None
