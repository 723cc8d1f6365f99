"""client.grpc.dependencies: per-dependency and per-method overrides, merged key by key
over the defaults, checked at load, applied by the balanced call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import grpc
import pytest
from pydantic import ValidationError

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from micro.client import CallSettings, ClientFactory
from micro.config.model import GrpcClientConfig, StaticService
from micro.registry import StaticDiscovery

SERVICE = "go-micro.echo"
StartReplica = Callable[[str], Awaitable[tuple[Any, int]]]


def config(**dependencies: Any) -> GrpcClientConfig:
    return GrpcClientConfig.model_validate(
        {"timeout": "1s", "max_attempts": 3, "dependencies": dependencies}
    )


def test_a_method_override_merges_over_its_dependency_over_the_defaults() -> None:
    settings = CallSettings(
        config(**{SERVICE: {"timeout": "300ms", "methods": {"Echo": {"max_attempts": 1}}}})
    )

    echo = settings.resolved(SERVICE, "Echo")
    put = settings.resolved(SERVICE, "Put")
    other = settings.resolved("go-micro.other", "Echo")

    assert (echo.timeout, echo.max_attempts) == (timedelta(milliseconds=300), 1)
    assert (put.timeout, put.max_attempts) == (timedelta(milliseconds=300), 3)
    assert (other.timeout, other.max_attempts) == (timedelta(seconds=1), 3)
    assert settings.resolved(SERVICE, "Echo") is echo  # cached for this config version


def test_an_update_drops_what_was_resolved_from_the_old_config() -> None:
    settings = CallSettings(config(**{SERVICE: {"max_attempts": 1}}))
    assert settings.resolved(SERVICE).max_attempts == 1

    settings.update(config(**{SERVICE: {"max_attempts": 2}}))

    assert settings.resolved(SERVICE).max_attempts == 2


@pytest.mark.parametrize(
    ("dependencies", "named"),
    [
        ({SERVICE: {"max_attempts": 9}}, "max_attempts"),
        ({SERVICE: {"timeot": "1s"}}, "timeot"),
        ({SERVICE: {"methods": {"Echo": {"timeout": "soon"}}}}, "Echo"),
        ({SERVICE: {"methods": {"/echo.v1.EchoService/Echo": {}}}}, "short method name"),
        ({SERVICE: {"dependencies": {}}}, "do not nest"),
        ({SERVICE: {"methods": {"Echo": {"methods": {}}}}}, "cannot hold"),
    ],
)
def test_a_bad_override_is_rejected_at_load_naming_it(
    dependencies: dict[str, Any], named: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        config(**dependencies)
    assert named in str(raised.value)
    assert SERVICE in str(raised.value)


async def test_the_call_reads_its_method_override(start_replica: StartReplica) -> None:
    replica, port = await start_replica("127.0.0.31")
    replica.fail_with = grpc.StatusCode.UNAVAILABLE
    discovery = StaticDiscovery(
        [StaticService(name=SERVICE, endpoints=(f"grpc://127.0.0.31:{port}",))]
    )
    factory = ClientFactory(
        discovery, config(**{SERVICE: {"methods": {"Echo": {"max_attempts": 1}}}})
    )
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    try:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.Echo(echo_pb2.EchoRequest(text="d"))
    finally:
        await factory.close()
    assert raised.value.code() is grpc.StatusCode.UNAVAILABLE
    assert replica.calls == 1  # not retried: the method's max_attempts, not the default 3
