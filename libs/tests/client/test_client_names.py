"""Registry names derived from a stub's descriptor, and the short name rule."""

from __future__ import annotations

import pytest

from api.echo.v1 import echo_pb2_grpc
from micro.client.factory import service_name_of
from micro.registry.names import registry_name, short_name


def test_the_registry_name_comes_from_the_proto_package() -> None:
    # echo.v1 -> go-micro.echo; the services' own names: proto/tests/test_contracts.py.
    assert service_name_of(echo_pb2_grpc.EchoServiceStub) == "go-micro.echo"


def test_short_and_registry_names_round_trip() -> None:
    assert short_name(registry_name("user-srv")) == "user-srv"


def test_a_class_without_a_descriptor_is_refused() -> None:
    with pytest.raises(TypeError, match="not a generated"):
        service_name_of(int)
