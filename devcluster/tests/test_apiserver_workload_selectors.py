"""A workload's spec.selector with matchExpressions: validated and matched against the
template labels as kube-apiserver does, and shown in the scale subresource."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

_POD_SPEC = {"containers": [{"name": "main", "image": "busybox:1.36"}]}
_LABELS = {"app": "x", "tier": "web"}


def _deployment(selector: dict[str, Any], labels: dict[str, str] = _LABELS) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "d"},
        "spec": {
            "selector": selector,
            "template": {"metadata": {"labels": labels}, "spec": _POD_SPEC},
        },
    }


def _expression(key: str, operator: str, *values: str) -> dict[str, Any]:
    expression: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        expression["values"] = list(values)
    return expression


@pytest.mark.parametrize(
    ("expression", "field", "message"),
    [
        (
            _expression("tier", "Equals", "web"),
            "spec.selector.matchExpressions[0].operator",
            'Unsupported value: "Equals": supported values: "In", "NotIn", "Exists", '
            '"DoesNotExist"',
        ),
        (
            _expression("tier", "In"),
            "spec.selector.matchExpressions[0].values",
            "Required value: must be specified when `operator` is 'In' or 'NotIn'",
        ),
        (
            _expression("tier", "Exists", "web"),
            "spec.selector.matchExpressions[0].values",
            "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
        ),
        (
            _expression("tier", "NotIn", "web"),
            "spec.template.metadata.labels",
            "`selector` does not match template `labels`",
        ),
        (
            _expression("legacy", "Exists"),
            "spec.template.metadata.labels",
            "`selector` does not match template `labels`",
        ),
    ],
)
def test_a_bad_or_unmatched_selector_is_422(
    http: httpx.Client, namespace: str, expression: dict[str, Any], field: str, message: str
) -> None:
    answer = http.post(
        f"/apis/apps/v1/namespaces/{namespace}/deployments",
        json=_deployment({"matchLabels": {"app": "x"}, "matchExpressions": [expression]}),
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["details"]["causes"][0]["field"] == field
    assert message in answer.json()["message"]
    assert http.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/d").status_code == 404


def test_a_selector_with_expressions_is_stored_and_scaled_with_its_full_text(
    http: httpx.Client, namespace: str
) -> None:
    selector = {
        "matchLabels": {"app": "x"},
        "matchExpressions": [
            _expression("tier", "In", "web", "api"),
            _expression("legacy", "DoesNotExist"),
            _expression("canary", "NotIn", "true"),
        ],
    }
    created = http.post(
        f"/apis/apps/v1/namespaces/{namespace}/deployments", json=_deployment(selector)
    )
    assert created.status_code == 201, created.text

    scale = http.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/d/scale")
    assert scale.status_code == 200
    # Sorted by key, the values of a set sorted too, as kube-apiserver prints a selector.
    assert scale.json()["status"]["selector"] == (
        "app=x,canary notin (true),!legacy,tier in (api,web)"
    )
