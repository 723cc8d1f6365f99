"""The caller's identity: projected token files written as the kubelet writes them, sent
in x-micro-identity to real gRPC servers on loopback."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest

from api.echo.v1 import echo_pb2, echo_pb2_grpc
from devcluster.runner.kubelet.volumes import write_atomically
from micro.app import ServiceContext
from micro.client import ClientFactory
from micro.config.model import GrpcClientConfig, ServiceConfig, StaticService
from micro.identity import IDENTITY_METADATA_KEY
from micro.identity.caller import CallerTokens, TokenFile
from micro.registry import StaticDiscovery
from micro.testing.apps import config_folder, running_app
from micro.testing.echo import EchoServicer
from micro.transport.client_interceptors import client_interceptors

SERVICE = "go-micro.echo"
TOKEN_DIR = "/var/run/secrets/micro/identity"
STREAM_METHOD = "/test.Stream/Chat"
LIMIT_S = 10.0  # a bound on waiting for a new token to be sent, not a timing assertion


class Recorder(EchoServicer):
    """Keeps the metadata of every call it answers."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []

    async def Echo(
        self, request: echo_pb2.EchoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> echo_pb2.EchoResponse:
        self.seen.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        return echo_pb2.EchoResponse(text=request.text)

    def identities(self) -> list[str | None]:
        return [metadata.get(IDENTITY_METADATA_KEY) for metadata in self.seen]


@pytest.fixture
def token_folder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The projected volume's folder as a devcluster pod's container sees TOKEN_DIR."""
    monkeypatch.setenv("DEVCLUSTER_ROOT", str(tmp_path))
    return tmp_path / TOKEN_DIR.lstrip("/")


@pytest.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, str]]:
    """A real gRPC server on loopback recording what it is sent; (recorder, endpoint)."""
    recording = Recorder()
    server = grpc.aio.server()
    echo_pb2_grpc.add_EchoServiceServicer_to_server(recording, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield recording, f"grpc://127.0.0.1:{port}"
    await server.stop(0)


@pytest.fixture
async def factory(recorder: tuple[Recorder, str]) -> AsyncIterator[ClientFactory]:
    """A client factory to the recorder, calling with the identity under TOKEN_DIR."""
    discovery = StaticDiscovery([StaticService(name=SERVICE, endpoints=(recorder[1],))])
    made = ClientFactory(
        discovery,
        GrpcClientConfig(timeout=timedelta(seconds=2)),
        tokens=CallerTokens(TOKEN_DIR),
    )
    yield made
    await made.close()


async def test_a_rotated_token_is_picked_up_and_no_call_fails(
    token_folder: Path, recorder: tuple[Recorder, str], factory: ClientFactory
) -> None:
    server, _ = recorder
    write_atomically(token_folder, {SERVICE: b"token-one\n"})
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    user = (("authorization", "Bearer end-user"),)
    for _ in range(20):
        await stub.Echo(echo_pb2.EchoRequest(text="a"), metadata=user)
    assert set(server.identities()) == {"token-one"}
    write_atomically(token_folder, {SERVICE: b"token-two\n"})  # the kubelet's refresh

    deadline = time.monotonic() + LIMIT_S
    while server.identities()[-1] != "token-two":  # calls go on meanwhile; none may fail
        assert time.monotonic() < deadline, "the rotated token was never sent"
        await stub.Echo(echo_pb2.EchoRequest(text="b"), metadata=user)
    for _ in range(20):
        await stub.Echo(echo_pb2.EchoRequest(text="c"), metadata=user)
    sent = server.identities()
    first_new = sent.index("token-two")
    assert set(sent[:first_new]) == {"token-one"}
    assert set(sent[first_new:]) == {"token-two"}  # never back to the old one
    # The end user's token stays where it was; the identity never travels in it.
    assert {metadata["authorization"] for metadata in server.seen} == {"Bearer end-user"}


async def test_a_missing_file_sends_no_identity_and_is_logged_once(
    token_folder: Path,
    recorder: tuple[Recorder, str],
    factory: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="micro.identity.caller")
    server, _ = recorder
    stub = factory.stub(SERVICE, echo_pb2_grpc.EchoServiceStub)
    for _ in range(5):
        await stub.Echo(echo_pb2.EchoRequest(text="a"))
    assert server.identities() == [None] * 5
    (warning,) = [r.getMessage() for r in caplog.records]
    assert str(token_folder / SERVICE) in warning
    write_atomically(token_folder, {SERVICE: b"token-late"})

    deadline = time.monotonic() + LIMIT_S
    while server.identities()[-1] != "token-late":
        assert time.monotonic() < deadline, "the token that appeared was never sent"
        await stub.Echo(echo_pb2.EchoRequest(text="b"))
    assert len(caplog.records) == 1


def test_the_file_is_checked_at_most_once_per_interval(token_folder: Path) -> None:
    now = [0.0]
    write_atomically(token_folder, {SERVICE: b"first"})
    token = TokenFile(token_folder / SERVICE, check_every_s=1.0, clock=lambda: now[0])
    assert token.current() == "first"
    write_atomically(token_folder, {SERVICE: b"second"})
    now[0] = 0.9
    assert token.current() == "first"  # not re-read within the interval
    now[0] = 1.0
    assert token.current() == "second"
    (token_folder / SERVICE).unlink()  # the projected file is gone
    now[0] = 2.0
    assert token.current() is None


async def test_streaming_calls_carry_the_identity_too(token_folder: Path) -> None:
    write_atomically(token_folder, {SERVICE: b"stream-token"})
    seen: list[str | None] = []

    async def chat(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        seen.append(dict(context.invocation_metadata() or ()).get(IDENTITY_METADATA_KEY))
        async for request in requests:
            yield request

    handler = grpc.method_handlers_generic_handler(
        "test.Stream", {"Chat": grpc.stream_stream_rpc_method_handler(chat)}
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    interceptors = client_interceptors(SERVICE, CallerTokens(TOKEN_DIR))
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", interceptors=interceptors)
    try:

        async def requests() -> AsyncIterator[bytes]:
            for word in (b"one", b"two"):
                yield word

        call = channel.stream_stream(STREAM_METHOD, None, None)(requests())
        assert [reply async for reply in call] == [b"one", b"two"]
    finally:
        await channel.close(None)
        await server.stop(0)
    assert seen == ["stream-token"]


async def test_without_identity_no_token_is_sent(
    token_folder: Path, recorder: tuple[Recorder, str]
) -> None:
    server, endpoint = recorder
    write_atomically(token_folder, {SERVICE: b"unused"})
    discovery = StaticDiscovery([StaticService(name=SERVICE, endpoints=(endpoint,))])
    plain = ClientFactory(discovery, GrpcClientConfig())  # identity.mode off
    try:
        await plain.stub(SERVICE, echo_pb2_grpc.EchoServiceStub).Echo(echo_pb2.EchoRequest())
    finally:
        await plain.close()
    assert server.identities() == [None]


def test_a_dependency_name_cannot_leave_the_token_folder(token_folder: Path) -> None:
    tokens = CallerTokens(TOKEN_DIR)
    assert tokens.token_file(SERVICE).path == token_folder / SERVICE
    for bad in ("", "../token-srv", "a/b", ".."):
        with pytest.raises(ValueError, match="cannot name a token file"):
            tokens.token_file(bad)


async def test_the_apps_clients_send_the_identity_when_the_mode_is_kubernetes(
    token_folder: Path, recorder: tuple[Recorder, str], tmp_path: Path
) -> None:
    server, endpoint = recorder
    write_atomically(token_folder, {SERVICE: b"app-token"})
    static = {"type": "static", "services": [{"name": SERVICE, "endpoints": [endpoint]}]}
    folder = config_folder(tmp_path / "configs", {"registry": static})

    async def no_handlers(_: ServiceContext[ServiceConfig]) -> None:
        return None

    for mode, expected in (("kubernetes", "app-token"), ("off", None)):
        env = {"MICRO__IDENTITY__MODE": mode}
        async with running_app(
            "go-micro.caller", ServiceConfig, no_handlers, config_dir=folder, env=env
        ) as app:
            assert app.ctx is not None
            stub = app.ctx.client(echo_pb2_grpc.EchoServiceStub, SERVICE)
            await stub.Echo(echo_pb2.EchoRequest(text=mode))
        assert server.identities()[-1] == expected
