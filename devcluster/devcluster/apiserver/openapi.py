"""A minimal /openapi/v2: a valid document without definitions.

kubectl downloads it to validate manifests on the client side (`apply` and `create`
do by default) and fails without it. The document names no schemas, so kubectl finds no
schema for a kind and leaves the checking to the server, whose validation is the
devcluster's own (see docs/devcluster.md).
"""

from __future__ import annotations

import json
from typing import Any

from devcluster.apiserver.discovery import KUBERNETES_VERSION

PROTOBUF = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"


def _document() -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": KUBERNETES_VERSION["gitVersion"]},
        "paths": {},
        "definitions": {},
    }


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (payloads here are shorter than 128 bytes)."""
    if len(payload) > 127:
        raise ValueError("payload too long for a one-byte length")
    return bytes([(number << 3) | 2, len(payload)]) + payload


def document_bytes(accept: str) -> tuple[bytes, str]:
    """The document in the gnostic protobuf encoding kubectl asks for, or as JSON."""
    document = _document()
    if PROTOBUF in accept:
        info = _field(1, document["info"]["title"].encode()) + _field(
            2, document["info"]["version"].encode()
        )
        # openapi_v2.Document: swagger = 1, info = 2.
        # "@" is not a valid media type character: client-go refuses it in Content-Type.
        return _field(1, b"2.0") + _field(2, info), "application/octet-stream"
    return json.dumps(document).encode(), "application/json"
