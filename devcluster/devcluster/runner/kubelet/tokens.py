"""Service-account tokens for pods, through the TokenRequest API as a kubelet gets them."""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client

from devcluster.runner.kube import Kube, Obj


def request_token(kube: Kube, pod: Obj, audiences: list[str], seconds: int) -> str:
    """POST .../serviceaccounts/<sa>/token bound to the pod (blocking)."""
    meta = pod["metadata"]
    account = pod["spec"].get("serviceAccountName") or "default"
    body = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": audiences,
            "expirationSeconds": seconds,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "uid": meta.get("uid", ""),
            },
        },
    }
    core: Any = kubernetes.client.CoreV1Api(kube.api_client)  # dict body, raw answer
    response = core.create_namespaced_service_account_token(
        account, meta["namespace"], body, _preload_content=False
    )
    try:
        answer: Obj = json.loads(response.data)
    finally:
        response.release_conn()
    token: str = answer["status"]["token"]
    return token
