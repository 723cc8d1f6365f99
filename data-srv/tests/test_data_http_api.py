"""GET /data/{device} through data-srv's real HTTP server and a real device-srv."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest

from device_srv.config import DeviceSrvConfig
from micro.app import App

DataSrvRunner = Callable[[str], AbstractAsyncContextManager[httpx.AsyncClient]]

TEXT_DEVICE1 = "Device active:  true\nOh and, no data for you!\n"


async def test_known_devices_answer_json(data_srv: httpx.AsyncClient) -> None:
    reply = await data_srv.get("/data/device1")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.headers["vary"] == "Accept"
    assert reply.json() == {"device": "device1", "active": True}
    inactive = await data_srv.get("/data/device3")
    assert inactive.json() == {"device": "device3", "active": False}


@pytest.mark.parametrize("accept", ["text/plain", "text/plain; charset=utf-8", "text/*"])
async def test_text_plain_answers_the_original_text(
    data_srv: httpx.AsyncClient, accept: str
) -> None:
    reply = await data_srv.get("/data/device1", headers={"accept": accept})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "text/plain; charset=utf-8"
    assert reply.headers["vary"] == "Accept"
    assert reply.text == TEXT_DEVICE1


async def test_json_wins_a_tie_with_text(data_srv: httpx.AsyncClient) -> None:
    reply = await data_srv.get("/data/device3", headers={"accept": "text/plain, application/json"})
    assert reply.json() == {"device": "device3", "active": False}


async def test_unknown_device_is_404_with_the_error_body(data_srv: httpx.AsyncClient) -> None:
    reply = await data_srv.get("/data/device9", headers={"accept": "text/plain"})
    assert reply.status_code == 404
    assert reply.json() == {
        "code": "NOT_FOUND",
        "message": "device 'device9' not found",
        "field": "name",
    }


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("/data/" + "x" * 64, "name: must be at most 63 characters (got 64)"),
        ("/data/d%C3%A9vice", "name: may contain only ASCII letters, digits, '.', '_' and '-'"),
        ("/data/dev%20ice", "name: may contain only ASCII letters, digits, '.', '_' and '-'"),
        ("/data/%F0%9F%99%82", "name: may contain only ASCII letters, digits, '.', '_' and '-'"),
    ],
)
async def test_invalid_name_is_400_naming_the_field(
    data_srv: httpx.AsyncClient, path: str, message: str
) -> None:
    reply = await data_srv.get(path)
    assert reply.status_code == 400
    assert reply.json() == {"code": "INVALID_ARGUMENT", "message": message, "field": "name"}


async def test_other_methods_are_refused(data_srv: httpx.AsyncClient) -> None:
    reply = await data_srv.post("/data/device1", json={"active": False})
    assert reply.status_code == 405
    assert (await data_srv.get("/data/device1")).json()["active"] is True


async def test_device_srv_stopped_is_503_with_retry_after(
    data_srv: httpx.AsyncClient, device_srv: App[DeviceSrvConfig], retry_after_s: int
) -> None:
    assert (await data_srv.get("/data/device1")).status_code == 200
    await device_srv.shutdown()
    for accept in ("application/json", "text/plain"):
        reply = await data_srv.get("/data/device1", headers={"accept": accept})
        assert reply.status_code == 503
        assert reply.headers["retry-after"] == str(retry_after_s)
        body = reply.json()
        assert body["code"] == "UNAVAILABLE"
        assert body["message"].startswith("device-srv is unavailable: ")


async def test_a_device_srv_that_never_answers_is_503(
    run_data_srv: DataSrvRunner, retry_after_s: int
) -> None:
    """A peer that accepts connections and stays silent: the call's deadline ends it."""
    silent = await asyncio.start_server(_never_answer, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    try:
        async with run_data_srv(f"grpc://127.0.0.1:{port}") as data_srv:
            reply = await data_srv.get("/data/device1")
    finally:
        silent.close()
        await silent.wait_closed()
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == str(retry_after_s)
    assert reply.json()["code"] == "UNAVAILABLE"


async def _never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        await reader.read()  # until the client gives up and closes
    writer.close()
