"""From Pod JSON to instances: routability, annotations, endpoints, prefixes."""

from __future__ import annotations

from typing import Any

import pytest

from micro.registry import RegistryKeys, format_endpoint, grpc_target, parse_endpoint
from micro.registry.endpoints import EndpointError
from micro.registry.pod_instances import MalformedPod, is_routable, pod_instance

GOMICRO = RegistryKeys()


def pod(
    *,
    name: str = "user-srv-5fc4d67dd5-sm9g4",
    prefix: str = "gomicro",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    phase: str = "Running",
    ready: str = "True",
    pod_ip: str = "10.244.0.9",
    deleting: bool = False,
    ports: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": "go-micro",
        "labels": {
            f"{prefix}-service-id": f"{name}.go-micro.user-srv",
            f"{prefix}-service-app": "go-micro.user-srv",
            f"{prefix}-service-version": "v1.0.0",
        }
        if labels is None
        else labels,
        "annotations": {f"{prefix}-service-protocols": '{"9090": "grpc"}'}
        if annotations is None
        else annotations,
    }
    if deleting:
        metadata["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [{"name": "app", "ports": ports or []}]},
        "status": {
            "phase": phase,
            "podIP": pod_ip,
            "conditions": [{"type": "Ready", "status": ready}],
        },
    }


def test_a_running_ready_pod_is_an_instance_with_its_labels_and_endpoints() -> None:
    instance = pod_instance(
        pod(annotations={"gomicro-service-protocols": '{"9090": "grpc", "8080": "http"}'}),
        GOMICRO,
    )
    assert instance is not None
    assert instance.id == "user-srv-5fc4d67dd5-sm9g4.go-micro.user-srv"
    assert instance.name == "go-micro.user-srv"
    assert instance.version == "v1.0.0"
    assert instance.endpoints == ("http://10.244.0.9:8080", "grpc://10.244.0.9:9090")
    assert instance.endpoint("grpc") == "grpc://10.244.0.9:9090"


@pytest.mark.parametrize(
    ("changes", "routable"),
    [
        ({}, True),
        ({"phase": "Pending"}, False),
        ({"phase": "Succeeded"}, False),
        ({"ready": "False"}, False),
        ({"ready": "Unknown"}, False),
        ({"deleting": True}, False),
        ({"pod_ip": ""}, False),
    ],
)
def test_routable_only_when_running_ready_and_not_deleting(
    changes: dict[str, Any], routable: bool
) -> None:
    subject = pod(**changes)
    assert is_routable(subject) is routable
    assert (pod_instance(subject, GOMICRO) is not None) is routable


def test_a_pod_without_a_ready_condition_is_not_routable() -> None:
    subject = pod()
    subject["status"]["conditions"] = [{"type": "ContainersReady", "status": "True"}]
    assert not is_routable(subject)


def test_go_micro_block_scalars_with_trailing_newlines_are_read() -> None:
    # The seed manifests use `|` block scalars: the values end in a newline.
    subject = pod(
        annotations={
            "gomicro-service-protocols": '{"9090": "grpc"}\n',
            "gomicro-service-metadata": '{"region": "sh", "zone": "sh001", "cluster": "pd"}\n',
        }
    )
    instance = pod_instance(subject, GOMICRO)
    assert instance is not None
    assert instance.endpoints == ("grpc://10.244.0.9:9090",)
    assert instance.metadata == {"region": "sh", "zone": "sh001", "cluster": "pd"}


def test_kratos_pods_are_read_with_their_prefix() -> None:
    subject = pod(prefix="kratos")
    assert pod_instance(subject, GOMICRO) is None  # not a gomicro pod
    instance = pod_instance(subject, RegistryKeys("kratos"))
    assert instance is not None
    assert instance.name == "go-micro.user-srv"


def test_ipv6_pod_ips_are_bracketed() -> None:
    instance = pod_instance(pod(pod_ip="fd00::1"), GOMICRO)
    assert instance is not None
    assert instance.endpoints == ("grpc://[fd00::1]:9090",)
    assert grpc_target(instance.endpoints[0]) == "[fd00::1]:9090"


def test_container_port_names_give_endpoints_without_the_annotation() -> None:
    subject = pod(
        annotations={},
        ports=[
            {"name": "grpc-port", "containerPort": 9090},
            {"name": "http-port", "containerPort": 8080},
            {"name": "metrics", "containerPort": 9100},
        ],
    )
    instance = pod_instance(subject, GOMICRO)
    assert instance is not None
    assert instance.endpoints == ("http://10.244.0.9:8080", "grpc://10.244.0.9:9090")


def test_a_pod_with_no_endpoint_at_all_is_not_an_instance() -> None:
    assert pod_instance(pod(annotations={}), GOMICRO) is None


def test_a_missing_id_label_falls_back_to_pod_name_dot_service() -> None:
    subject = pod(labels={"gomicro-service-app": "go-micro.user-srv"})
    instance = pod_instance(subject, GOMICRO)
    assert instance is not None
    assert instance.id == "user-srv-5fc4d67dd5-sm9g4.go-micro.user-srv"
    assert instance.version == ""


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("gomicro-service-protocols", "{9090: grpc}", "not JSON"),
        ("gomicro-service-protocols", '["grpc"]', "JSON object"),
        ("gomicro-service-protocols", '{"http": "9090"}', "not a port number"),
        ("gomicro-service-protocols", '{"70000": "grpc"}', "not a port number"),
        ("gomicro-service-protocols", '{"9090": 1}', "scheme"),
        ("gomicro-service-metadata", '{"zone": 1}', "object of strings"),
        ("gomicro-service-metadata", "zone=sh", "not JSON"),
        ("gomicro-service-metadata", "[" * 12_000, "nested too deeply"),
    ],
)
def test_malformed_annotations_raise_naming_the_annotation(
    key: str, value: str, reason: str
) -> None:
    annotations = {"gomicro-service-protocols": '{"9090": "grpc"}', key: value}
    with pytest.raises(MalformedPod, match=reason) as raised:
        pod_instance(pod(annotations=annotations), GOMICRO)
    assert key in str(raised.value)


def test_endpoints_round_trip_and_reject_bad_strings() -> None:
    assert format_endpoint("grpc", "fd00::1", 9090) == "grpc://[fd00::1]:9090"
    assert parse_endpoint("grpc://[fd00::1]:9090") == ("grpc", "[fd00::1]", 9090)
    assert parse_endpoint("http://127.0.0.5:8080") == ("http", "127.0.0.5", 8080)
    for bad in ("127.0.0.1:9090", "grpc://fd00::1:9090", "grpc://host", "grpc://h:99999"):
        with pytest.raises(EndpointError, match="endpoint"):
            parse_endpoint(bad)
