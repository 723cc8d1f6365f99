"""Server-side printing: the Table that `kubectl get` asks for."""

from __future__ import annotations

import httpx

from devcluster.apiserver.tables import human_age

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def test_pods_print_as_a_table(http: httpx.Client, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/pods"
    http.post(
        path,
        json={
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "m", "image": "i:1"}], "nodeName": "n1"},
        },
    )
    answer = http.get(path, headers={"Accept": TABLE})
    table = answer.json()
    assert (table["kind"], table["apiVersion"]) == ("Table", "meta.k8s.io/v1")
    columns = [(c["name"], c["priority"]) for c in table["columnDefinitions"]]
    assert columns == [
        ("Name", 0),
        ("Ready", 0),
        ("Status", 0),
        ("Restarts", 0),
        ("Age", 0),
        ("IP", 1),
        ("Node", 1),
    ]
    (row,) = table["rows"]
    assert row["cells"][:4] == ["p", "0/1", "Pending", 0]
    assert row["cells"][-1] == "n1"
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["name"] == "p"
    single = http.get(f"{path}/p", headers={"Accept": TABLE}, params={"includeObject": "None"})
    assert "object" not in single.json()["rows"][0]
    plain = http.get(path)
    assert plain.json()["kind"] == "PodList"


def test_ages_read_like_kubectl() -> None:
    assert human_age(None) == "<unknown>"
    assert human_age("2000-01-01T00:00:00Z").endswith("d")
