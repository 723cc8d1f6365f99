"""micro.log: the seed's text line, JSON lines, and level/format changes at run time."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Callable, Iterator

import pytest

from micro.config.documents import ConfigDocument
from micro.config.handle import ConfigHandle
from micro.config.model import ServiceConfig
from micro.log import configure_logging, follow_config, set_level

# INFO service.id=... service.name=... service.version=... ts=... caller=... trace_id=
# span_id= msg=... : the Go-Micro example's line, field for field.
SEED_LINE = re.compile(
    r"^INFO service\.id=user-srv-5fc4d-sm9g4 service\.name=go-micro\.user-srv "
    r"service\.version=0723caf ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
    r"caller=observability/test_runtime_log\.py:\d+ trace_id= span_id= "
    r"msg=\[gRPC\] server listening on: \[::\]:9090$"
)


@pytest.fixture
def capture() -> Iterator[Callable[..., io.StringIO]]:
    def install(**settings: str) -> io.StringIO:
        stream = io.StringIO()
        configure_logging(
            service_id="user-srv-5fc4d-sm9g4",
            service_name="go-micro.user-srv",
            service_version="0723caf",
            stream=stream,
            **settings,
        )
        return stream

    yield install
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "micro"]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING)


def test_text_line_matches_the_seed(capture: Callable[..., io.StringIO]) -> None:
    stream = capture()
    logging.getLogger("go-micro.user-srv").info("[gRPC] server listening on: [::]:9090")
    assert SEED_LINE.match(stream.getvalue().strip()), stream.getvalue()


def test_one_line_per_event_even_with_a_traceback(capture: Callable[..., io.StringIO]) -> None:
    stream = capture()
    log = logging.getLogger("go-micro.user-srv")
    try:
        raise ValueError("first\nsecond")
    except ValueError:
        log.exception("failed\nbadly", extra={"fields": {"method": "/a.B/C", "note": "two words"}})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert 'method=/a.B/C note="two words" error="Traceback' in lines[0]
    assert lines[0].endswith("msg=failed\\nbadly")


def test_json_format(capture: Callable[..., io.StringIO]) -> None:
    stream = capture(fmt="json")
    logging.getLogger("go-micro.user-srv").warning("hello %s", "there", extra={"fields": {"n": 1}})
    event = json.loads(stream.getvalue())
    assert event["level"] == "WARNING"
    assert event["msg"] == "hello there"
    assert event["service.id"] == "user-srv-5fc4d-sm9g4"
    assert event["service.name"] == "go-micro.user-srv"
    assert event["service.version"] == "0723caf"
    assert (event["trace_id"], event["span_id"], event["n"]) == ("", "", 1)
    assert event["caller"].startswith("observability/test_runtime_log.py:")
    with pytest.raises(ValueError, match="unknown level"):
        set_level("LOUD")


def test_each_line_carries_its_own_time_and_caller(capture: Callable[..., io.StringIO]) -> None:
    # The formatter keeps the current second and file names between lines: a line from
    # another second, or another file, must still show its own.
    stream = capture()
    handler = next(h for h in logging.getLogger().handlers if h.get_name() == "micro")
    moments = [
        (1695531535.125, "/srv/app/transport/grpc.py", "2023-09-24T04:58:55.125Z"),
        (1695531536.75, "/srv/app/handler/devices.py", "2023-09-24T04:58:56.750Z"),
        (1695531535.5, "/srv/app/transport/grpc.py", "2023-09-24T04:58:55.500Z"),
    ]
    for created, pathname, _ in moments:
        record = logging.LogRecord("t", logging.INFO, pathname, 7, "m", None, None)
        record.created = created
        handler.handle(record)
    lines = stream.getvalue().splitlines()
    for line, (_, pathname, ts) in zip(lines, moments, strict=True):
        short = "/".join(pathname.rsplit("/", 2)[-2:])
        assert f" ts={ts} caller={short}:7 " in line, line


class MemorySource:
    """A remote layer held in memory: what a ConfigMap watch hands the handle."""

    def __init__(self, data: dict[str, object]) -> None:
        self.data = data
        self.on_change: Callable[[], None] = lambda: None

    async def start(self, on_change: Callable[[], None]) -> None:
        self.on_change = on_change

    async def stop(self) -> None:
        return None

    def documents(self) -> list[ConfigDocument]:
        return [ConfigDocument(name="ns/cm/config.yaml", format="yaml", data=self.data)]


async def test_level_and_format_follow_the_config(capture: Callable[..., io.StringIO]) -> None:
    stream = capture(level="INFO")
    source = MemorySource({"log": {"level": "INFO"}})
    empty = ConfigDocument(name="environment", format="env", data={})
    handle = ConfigHandle(
        ServiceConfig, service="go-micro.user-srv", local=[], environment=empty, remote=[source]
    )
    await handle.start()
    unsubscribe = follow_config(handle)
    log = logging.getLogger("go-micro.user-srv")
    log.debug("hidden")
    source.data = {"log": {"level": "DEBUG", "format": "json"}}
    assert await handle.reload()
    log.debug("shown")
    unsubscribe()
    await handle.stop()
    text = stream.getvalue()
    assert "hidden" not in text
    assert json.loads(text.splitlines()[-1])["msg"] == "shown"
