"""Observers: called only when their selected part changed; sync or async; isolated."""

from __future__ import annotations

import logging

import pytest

from micro.config.model import LogConfig, ServiceConfig
from micro.config.observers import Observers


def config(level: str = "INFO", fmt: str = "text") -> ServiceConfig:
    return ServiceConfig.model_validate({"log": {"level": level, "format": fmt}})


async def test_called_only_when_the_selected_part_changes() -> None:
    observers: Observers[ServiceConfig] = Observers()
    levels: list[str] = []
    observers.add(lambda c: c.log.level, levels.append)
    await observers.notify(config("INFO"), config("INFO", "json"))
    assert levels == []
    await observers.notify(config("INFO"), config("DEBUG"))
    assert levels == ["DEBUG"]


async def test_async_observer_is_awaited_with_the_typed_value() -> None:
    observers: Observers[ServiceConfig] = Observers()
    seen: list[LogConfig] = []

    async def on_log(section: LogConfig) -> None:
        seen.append(section)

    observers.add(lambda c: c.log, on_log)
    await observers.notify(config("INFO"), config("ERROR", "json"))
    assert seen == [LogConfig(level="ERROR", format="json")]


async def test_a_failing_observer_is_logged_and_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    observers: Observers[ServiceConfig] = Observers()
    calls: list[str] = []

    def broken(_level: str) -> None:
        raise RuntimeError("observer bug")

    async def broken_async(_level: str) -> None:
        raise ValueError("async observer bug")

    observers.add(lambda c: c.log.level, broken)
    observers.add(lambda c: c.log.level, broken_async)
    observers.add(lambda c: c.log.level, calls.append)
    with caplog.at_level(logging.ERROR, logger="micro.config"):
        await observers.notify(config("INFO"), config("DEBUG"))
    assert calls == ["DEBUG"]
    failures = [r for r in caplog.records if "config observer" in r.getMessage()]
    assert len(failures) == 2


async def test_unsubscribe_stops_calls() -> None:
    observers: Observers[ServiceConfig] = Observers()
    levels: list[str] = []
    unsubscribe = observers.add(lambda c: c.log.level, levels.append)
    unsubscribe()
    unsubscribe()  # twice is harmless
    await observers.notify(config("INFO"), config("DEBUG"))
    assert levels == []
