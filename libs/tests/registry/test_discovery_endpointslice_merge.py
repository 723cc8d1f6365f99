"""EndpointSlices to instances: conditions, several slices, port names."""

from __future__ import annotations

from typing import Any

from micro.registry.endpointslices import port_scheme, slice_instances
from micro.registry.names import short_name

SERVICE = "go-micro.user-srv"


def every(endpoint: dict[str, Any]) -> bool:
    """Admit all: the account check of targetRef pods is tested against the devcluster."""
    return True


def endpoint(
    address: str,
    pod: str,
    *,
    ready: bool | None = True,
    serving: bool | None = None,
    terminating: bool | None = None,
) -> dict[str, Any]:
    conditions = {
        k: v
        for k, v in (("ready", ready), ("serving", serving), ("terminating", terminating))
        if v is not None
    }
    return {
        "addresses": [address],
        "conditions": conditions,
        "targetRef": {"kind": "Pod", "name": pod},
        "zone": "sh001",
    }


def endpoint_slice(
    name: str, *endpoints: dict[str, Any], port_name: str = "user-srv-grpc"
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "user-srv"}},
        "addressType": "IPv4",
        "ports": [{"name": port_name, "port": 9090, "protocol": "TCP"}],
        "endpoints": list(endpoints),
    }


def ids(slices: list[dict[str, Any]]) -> list[str]:
    return sorted(i.id for i in slice_instances(SERVICE, slices, every))


def test_ready_endpoints_of_every_slice_are_merged() -> None:
    slices = [
        endpoint_slice("user-srv-abc", endpoint("10.0.0.1", "p1")),
        endpoint_slice("user-srv-def", endpoint("10.0.0.2", "p2"), endpoint("10.0.0.3", "p3")),
    ]
    instances = slice_instances(SERVICE, slices, every)
    assert sorted(i.endpoints[0] for i in instances) == [
        "grpc://10.0.0.1:9090",
        "grpc://10.0.0.2:9090",
        "grpc://10.0.0.3:9090",
    ]
    assert {i.id for i in instances} == {f"p{n}.{SERVICE}" for n in (1, 2, 3)}
    assert instances[0].metadata == {"zone": "sh001"}


def test_not_ready_and_terminating_endpoints_are_left_out() -> None:
    slices = [
        endpoint_slice(
            "s1",
            endpoint("10.0.0.1", "p1"),
            endpoint("10.0.0.2", "p2", ready=False),
            endpoint("10.0.0.3", "p3", ready=False, serving=True, terminating=True),
            endpoint("10.0.0.4", "p4", ready=None),  # unknown: the API says treat as ready
        )
    ]
    assert ids(slices) == [f"p1.{SERVICE}", f"p4.{SERVICE}"]


def test_serving_terminating_endpoints_are_used_only_when_none_is_ready() -> None:
    slices = [
        endpoint_slice(
            "s1",
            endpoint("10.0.0.2", "p2", ready=False, serving=False, terminating=True),
            endpoint("10.0.0.3", "p3", ready=False, serving=True, terminating=True),
        )
    ]
    assert ids(slices) == [f"p3.{SERVICE}"]


def test_an_address_in_two_slices_counts_once() -> None:
    slices = [
        endpoint_slice("s1", endpoint("10.0.0.1", "p1")),
        endpoint_slice("s2", endpoint("10.0.0.1", "p1")),
    ]
    assert ids(slices) == [f"p1.{SERVICE}"]


def test_ipv6_slices_give_bracketed_endpoints() -> None:
    (instance,) = slice_instances(SERVICE, [endpoint_slice("s1", endpoint("fd00::7", "p7"))], every)
    assert instance.endpoints == ("grpc://[fd00::7]:9090",)


def test_endpoints_not_admitted_are_left_out_even_when_ready() -> None:
    slices = [
        endpoint_slice(
            "s1",
            endpoint("10.0.0.1", "forged"),
            endpoint("10.0.0.2", "p2", ready=False, serving=True, terminating=True),
        )
    ]
    instances = slice_instances(SERVICE, slices, lambda e: e["targetRef"]["name"] != "forged")
    assert [i.id for i in instances] == [f"p2.{SERVICE}"]  # the draining genuine one


def test_ports_of_another_protocol_give_no_instance() -> None:
    assert ids([endpoint_slice("s1", endpoint("10.0.0.1", "p1"), port_name="metrics")]) == []


def test_port_schemes_and_service_names() -> None:
    assert port_scheme({"name": "grpc"}) == "grpc"
    assert port_scheme({"name": "admin-srv-http"}) == "http"
    assert port_scheme({"name": "grpc-port"}) == "grpc"
    assert port_scheme({"name": "x", "appProtocol": "grpc"}) == "grpc"
    assert port_scheme({"name": "grpcx"}) is None
    assert short_name("go-micro.user-srv") == "user-srv"
