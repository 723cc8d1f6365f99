"""Raw JSON requests through the official client, so callers see the wire shape."""

from __future__ import annotations

import json
from typing import Any

import kubernetes.client
import urllib3
from kubernetes.client.exceptions import ApiException

JsonObject = dict[str, Any]
Query = list[tuple[str, str]]


def open_get(
    api: kubernetes.client.ApiClient,
    path: str,
    query: Query,
    timeout: tuple[float, float],
) -> urllib3.BaseHTTPResponse:
    """Send a GET with the client's credentials; the open response, or ApiException."""
    method, url, headers, body, post = api.param_serialize(
        method="GET",
        resource_path=path,
        query_params=query,
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(method, url, headers, body, post, _request_timeout=timeout)
    if not 200 <= response.status <= 299:
        response.read()  # type: ignore[no-untyped-call]
        raise ApiException.from_response(http_resp=response, body=None, data=None)
    raw: urllib3.BaseHTTPResponse = response.response
    return raw


def get_json(
    api: kubernetes.client.ApiClient,
    path: str,
    query: Query,
    timeout: tuple[float, float],
) -> JsonObject:
    response = open_get(api, path, query, timeout)
    try:
        data: JsonObject = json.loads(response.data)
    finally:
        response.release_conn()
    return data
