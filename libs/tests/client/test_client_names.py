"""Registry names derived from a stub's descriptor, and the short name rule."""

from __future__ import annotations

import pytest

from api.device_srv.v1 import device_pb2_grpc
from api.token_srv.v1 import token_pb2_grpc
from api.user_srv.v1 import user_pb2_grpc
from micro.client.factory import service_name_of
from micro.registry.names import registry_name, short_name


def test_the_registry_name_comes_from_the_proto_package() -> None:
    assert service_name_of(user_pb2_grpc.UserServiceStub) == "go-micro.user-srv"
    assert service_name_of(token_pb2_grpc.TokenServiceStub) == "go-micro.token-srv"
    assert service_name_of(device_pb2_grpc.DevSvcStub) == "go-micro.device-srv"


def test_short_and_registry_names_round_trip() -> None:
    assert short_name(registry_name("user-srv")) == "user-srv"


def test_a_class_without_a_descriptor_is_refused() -> None:
    with pytest.raises(TypeError, match="not a generated"):
        service_name_of(int)
