"""Observers of a part of the configuration, called when that part changes."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

logger = logging.getLogger("micro.config")

C = TypeVar("C")
T = TypeVar("T")

OnChange = Callable[[T], Awaitable[None] | None]


@dataclass(eq=False)
class Observer(Generic[C, T]):
    select: Callable[[C], T]
    on_change: OnChange[T]

    async def notify(self, old: C, new: C) -> None:
        """Call on_change(select(new)) when the selected part differs; never raise."""
        try:
            before, after = self.select(old), self.select(new)
            if before == after:
                return
            result = self.on_change(after)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("config observer %s failed", _name(self.on_change))


class Observers(Generic[C]):
    def __init__(self) -> None:
        self._observers: list[Observer[C, Any]] = []

    def add(self, select: Callable[[C], T], on_change: OnChange[T]) -> Callable[[], None]:
        observer: Observer[C, T] = Observer(select, on_change)
        self._observers.append(observer)

        def unsubscribe() -> None:
            if observer in self._observers:
                self._observers.remove(observer)

        return unsubscribe

    def selects(self) -> list[Callable[[C], Any]]:
        """What each observer reads, to tell which changes someone follows."""
        return [observer.select for observer in self._observers]

    async def notify(self, old: C, new: C) -> None:
        """Each observer in subscription order; one that fails does not stop the others."""
        for observer in list(self._observers):
            await observer.notify(old, new)


def _name(function: object) -> str:
    return getattr(function, "__qualname__", None) or repr(function)
