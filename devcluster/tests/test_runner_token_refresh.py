"""Projected service-account tokens are renewed by the kubelet (at 80% of their
lifetime; here sooner, through the test-only DEVCLUSTER_TOKEN_REFRESH_SECONDS) and
written with the atomic `..data` swap, so a reader never sees a missing or partial file."""

from __future__ import annotations

import base64
import json
import os
import pathlib
import time
from typing import Any

import pytest

from devcluster.runner.kubelet.tokens import REFRESH_CAP_ENV
from devcluster.runner.testing import running_node, wait_for

NAMESPACE = "identity"
AUDIENCE = "go-micro.token-srv"
SETTINGS = "mode: kubernetes\n"
READ_FOR_S = 30.0  # bound on the reading loop; it ends as soon as enough renewals passed


def manifests() -> str:
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "robot", "namespace": NAMESPACE},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "settings", "namespace": NAMESPACE},
            "data": {"settings.yaml": SETTINGS},
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "caller", "namespace": NAMESPACE},
            "spec": {
                "serviceAccountName": "robot",
                "containers": [
                    {
                        "name": "app",
                        "image": "devcluster-test/sleeper",
                        "volumeMounts": [
                            {"name": "identity", "mountPath": "/var/run/secrets/micro/identity"}
                        ],
                    }
                ],
                "volumes": [
                    {
                        "name": "identity",
                        "projected": {
                            "sources": [
                                {
                                    "serviceAccountToken": {
                                        "audience": AUDIENCE,
                                        "expirationSeconds": 600,
                                        "path": AUDIENCE,
                                    }
                                },
                                {"configMap": {"name": "settings"}},
                            ]
                        },
                    }
                ],
            },
        },
    ]
    return "\n---\n".join(json.dumps(o) for o in objects)


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


def test_a_projected_token_is_renewed_with_an_atomic_swap(
    tmp_path: pathlib.Path, runner_images: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(REFRESH_CAP_ENV, "1")
    with running_node(tmp_path, manifests(), images=runner_images) as node:
        pod = wait_for(
            "the pod to run",
            lambda: (
                p
                if (p := node.core.read_namespaced_pod("caller", NAMESPACE)).status.phase
                == "Running"
                else None
            ),
        )
        # The container's view: its root has the mount path, as the kubelet mounts it.
        root = node.state_dir / "pods" / pod.metadata.uid / "root" / "app"
        volume = root / "var/run/secrets/micro/identity"
        token_file, settings_file = volume / AUDIENCE, volume / "settings.yaml"
        wait_for("the token file", token_file.exists)

        seen: dict[str, dict[str, Any]] = {}
        links = set()
        reads = 0
        deadline = time.monotonic() + READ_FOR_S
        # Read as a service would, without pause, while the kubelet swaps the folder.
        while len(seen) < 3 and time.monotonic() < deadline:
            token = token_file.read_text()
            assert settings_file.read_text() == SETTINGS  # the other source is kept
            claims = _claims(token)  # a partial file would not decode
            seen.setdefault(claims["jti"], claims)
            links.add(os.readlink(volume / "..data"))
            reads += 1

    assert len(seen) >= 3, f"{len(seen)} distinct tokens in {READ_FOR_S}s over {reads} reads"
    assert len(links) >= 3  # each renewal is a new ..<timestamp> folder behind ..data
    issued = [claims["iat"] for claims in seen.values()]
    assert issued == sorted(issued)
    for claims in seen.values():
        assert claims["aud"] == [AUDIENCE]
        assert claims["exp"] - claims["iat"] == 600  # the minimum stays; only the period is short
        assert claims["kubernetes.io"]["pod"]["uid"] == pod.metadata.uid
