"""follow and view on a real ConfigHandle whose files change between reloads: applied or
kept with a reason, read per call, and a warning for a live change nothing follows."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import pytest

from micro.config import ConfigHandle
from micro.config.documents import ConfigDocument
from micro.config.environment import environment_document
from micro.config.files import read_config_dir
from micro.config.model import Section, ServiceConfig
from micro.config.reload import Reload
from micro.errors import invalid_argument


class Greeting(Section):
    reload_policy = Reload.LIVE

    text: str = "hello"
    repeat: int = 1


class GreeterConfig(ServiceConfig):
    greeting: Greeting = Greeting()
    password: Annotated[str, Reload.LIVE] = "start-secret"


class Folder:
    """The config files of tmp_path, read again at each reload (a watched layer)."""

    def __init__(self, path: Path) -> None:
        self._path = path

    async def start(self, on_change: Callable[[], None]) -> None:
        pass

    async def stop(self) -> None:
        pass

    def documents(self) -> list[ConfigDocument]:
        return read_config_dir(self._path, {})


def write(folder: Path, text: str) -> None:
    (folder / "config.yaml").write_text(text, encoding="utf-8")


@pytest.fixture
def handle(tmp_path: Path) -> ConfigHandle[GreeterConfig]:
    write(tmp_path, "greeting:\n  text: hello\n")
    handle = ConfigHandle(
        GreeterConfig,
        service="go-micro.greeter-srv",
        local=[],
        environment=environment_document({}),
        remote=[Folder(tmp_path)],
    )
    handle.load_now()
    return handle


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


async def test_follow_applies_later_changes_only_and_logs_them(
    handle: ConfigHandle[GreeterConfig], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []

    async def apply(text: str) -> None:
        seen.append(text)

    handle.follow(lambda c: c.greeting.text, apply, what="greeting text")
    caplog.set_level(logging.INFO, logger="micro.config")
    write(tmp_path, "greeting:\n  text: hello\n  repeat: 2\n")
    await handle.reload()
    assert seen == []  # the start value is compose's; repeat is not what it selects
    write(tmp_path, "greeting:\n  text: bonjour\n")
    await handle.reload()
    assert seen == ["bonjour"]
    assert "greeting text applied" in messages(caplog, logging.INFO)


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (ValueError("no signing key"), "no signing key"),
        (invalid_argument("devices", "listed twice"), "devices: listed twice"),
    ],
)
async def test_a_failed_apply_is_logged_with_its_reason_never_the_value(
    handle: ConfigHandle[GreeterConfig],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    reason: str,
) -> None:
    def apply(_password: str) -> None:
        raise error

    handle.follow(lambda c: c.password, apply, what="password")
    write(tmp_path, "password: new-secret\n")
    with caplog.at_level(logging.INFO, logger="micro.config"):
        await handle.reload()
    errors = messages(caplog, logging.ERROR)
    assert errors == [f"password not applied, keeping the previous: {reason}"]
    assert "password applied" not in messages(caplog, logging.INFO)
    assert all("new-secret" not in r.getMessage() for r in caplog.records)


async def test_a_view_reads_the_current_config_at_each_call(
    handle: ConfigHandle[GreeterConfig], tmp_path: Path
) -> None:
    repeat = handle.view(lambda c: c.greeting.repeat)
    assert repeat() == 1
    write(tmp_path, "greeting:\n  repeat: 3\n")
    await handle.reload()
    assert repeat() == 3


async def test_a_live_change_nothing_follows_is_named_in_a_warning(
    handle: ConfigHandle[GreeterConfig], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handle.view(lambda c: c.greeting.repeat)
    handle.follow(lambda c: c.greeting.text, lambda _text: None, what="greeting text")
    write(tmp_path, "greeting:\n  text: bonjour\n  repeat: 2\npassword: new-secret\n")
    with caplog.at_level(logging.WARNING, logger="micro.config"):
        await handle.reload()
    assert messages(caplog, logging.WARNING) == [
        "password changed at run time but nothing follows it: it takes effect only after a restart"
    ]


async def test_the_frameworks_subscriptions_count_as_following(
    handle: ConfigHandle[GreeterConfig], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handle.subscribe(lambda c: c.log, lambda _log: None)
    handle.follow(lambda c: c.greeting, lambda _greeting: None, what="greeting")
    write(tmp_path, "greeting:\n  repeat: 5\nlog:\n  level: DEBUG\n")
    with caplog.at_level(logging.WARNING, logger="micro.config"):
        await handle.reload()
    assert messages(caplog, logging.WARNING) == []


async def test_a_restart_only_change_keeps_its_own_warning(
    handle: ConfigHandle[GreeterConfig], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handle.follow(lambda c: c.tracing, lambda _tracing: None, what="tracing")
    write(tmp_path, "tracing:\n  sample_ratio: 0.5\n")
    with caplog.at_level(logging.WARNING, logger="micro.config"):
        await handle.reload()
    assert messages(caplog, logging.WARNING) == [
        "tracing.sample_ratio changed at run time but takes effect only after a restart"
    ]


async def test_a_selector_calling_a_method_counts_as_reading_its_whole_section(
    handle: ConfigHandle[GreeterConfig], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    handle.follow(
        lambda c: (c.greeting.text, c.greeting.model_dump()), lambda _g: None, what="greeting"
    )
    write(tmp_path, "greeting:\n  repeat: 4\npassword: new-secret\n")
    with caplog.at_level(logging.WARNING, logger="micro.config"):
        await handle.reload()
    assert messages(caplog, logging.WARNING) == [
        "password changed at run time but nothing follows it: it takes effect only after a restart"
    ]
