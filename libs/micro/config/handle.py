"""ConfigHandle: the current good config, its observers, and reloads from watched sources."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from micro.config.documents import ConfigDocument
from micro.config.errors import ConfigError
from micro.config.merge import merge_documents
from micro.config.metrics import CONFIG_RELOAD_ERRORS, CONFIG_VALID
from micro.config.model import ServiceConfig
from micro.config.observers import Observers
from micro.config.reads import covered, fields_read
from micro.config.reload import Reload, changed_fields
from micro.config.validation import validate

logger = logging.getLogger("micro.config")

C = TypeVar("C", bound=ServiceConfig)
T = TypeVar("T")


class RemoteSource(Protocol):
    """A watched layer (the ConfigMaps, or the Secrets) of the effective config."""

    async def start(self, on_change: Callable[[], None]) -> None:
        """Begin watching; return once the first snapshot is in. on_change may be called
        from any thread after that."""

    async def stop(self) -> None: ...

    def documents(self) -> list[ConfigDocument]:
        """The documents of the current snapshot; ConfigError when one cannot be parsed."""


class ConfigHandle(Generic[C]):
    """The last good configuration of one service, recomputed from every source's
    current snapshot on each change (never patched), so removed keys leave nothing."""

    def __init__(
        self,
        model: type[C],
        *,
        service: str,
        local: Sequence[ConfigDocument],
        environment: ConfigDocument,
        remote: Sequence[RemoteSource] = (),
    ) -> None:
        self._model = model
        self._service = service
        self._local = list(local)
        self._environment = environment
        self._remote = list(remote)
        self._current: C | None = None
        self._last_error: str | None = None
        self._observers: Observers[C] = Observers()
        self._views: list[Callable[[C], object]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._started_sources: list[RemoteSource] = []

    # the contract ----------------------------------------------------------------------

    @property
    def current(self) -> C:
        """The last good config (never a rejected one)."""
        if self._current is None:
            raise RuntimeError(
                f"the config of {self._service} comes from remote sources: await start() first"
            )
        return self._current

    @property
    def last_error(self) -> str | None:
        """Why the latest update was rejected; None once the sources validate again."""
        return self._last_error

    def follow(
        self,
        select: Callable[[C], T],
        apply: Callable[[T], Awaitable[object] | object],
        *,
        what: str,
    ) -> Callable[[], None]:
        """Call apply(select(new)) (sync or async) on each later change of select(config),
        logging "<what> applied", or at ERROR why it was not; the caller applies the start
        value itself. Returns a function that stops following."""

        async def on_change(value: T) -> None:
            try:
                result = apply(value)
                if inspect.isawaitable(result):
                    await result
            except Exception as error:  # the reason only: the value may be a secret
                logger.error("%s not applied, keeping the previous: %s", what, _reason(error))
                return
            logger.info("%s applied", what)

        return self._observers.add(select, on_change)

    def view(self, select: Callable[[C], T]) -> Callable[[], T]:
        """A getter of select(current), read at each call, for settings used per request."""
        self._views.append(select)
        return lambda: select(self.current)

    def subscribe(
        self, select: Callable[[C], T], on_change: Callable[[T], Awaitable[None] | None]
    ) -> Callable[[], None]:
        """The framework's own observers (log, clients, CORS), which log for themselves:
        on_change(select(new)) whenever select(new) != select(old). Services use follow."""
        return self._observers.add(select, on_change)

    async def start(self) -> None:
        """Watch the remote sources; the first full load happens here when there are any,
        and raises ConfigError when that config is invalid."""
        if self._worker is not None or not self._remote:
            return  # already watching, or nothing to watch
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        try:
            for source in self._remote:
                self._started_sources.append(source)
                await source.start(self._on_source_change)
            self._accept(self.compute())
        except BaseException:
            await self._stop_sources()
            raise
        self._worker = asyncio.create_task(self._reload_loop(), name=f"config:{self._service}")

    async def stop(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        await self._stop_sources()

    # loading ---------------------------------------------------------------------------

    def documents(self) -> list[ConfigDocument]:
        """Every document in layer order: local files < ConfigMaps < Secrets < environment."""
        remote = [document for source in self._remote for document in source.documents()]
        return [*self._local, *remote, self._environment]

    def compute(self) -> C:
        """Validate the effective config from the sources' current snapshots."""
        documents = self.documents()
        return validate(self._model, merge_documents(documents), documents)

    def load_now(self) -> None:
        """The first load when every source is local: ConfigError when invalid."""
        self._accept(self.compute())

    async def reload(self) -> bool:
        """Recompute; keep the last good config on error. True when the update was taken."""
        try:
            new = self.compute()
        except ConfigError as exc:
            self._reject(str(exc))
            return False
        old = self._current
        self._accept(new)
        if old is not None and old != new:
            logger.info("config reloaded")
            self._warn_unapplied(old, new)
            await self._observers.notify(old, new)
        return True

    # internals -------------------------------------------------------------------------

    def _accept(self, config: C) -> None:
        if self._last_error is not None:
            logger.info("config valid again; the rejected update is superseded")
        self._current = config
        self._last_error = None
        CONFIG_VALID.labels(service=self._service).set(1)

    def _reject(self, error: str) -> None:
        CONFIG_VALID.labels(service=self._service).set(0)
        if error == self._last_error:
            return  # the same bad state seen again (a relist, an unrelated change)
        self._last_error = error
        CONFIG_RELOAD_ERRORS.labels(service=self._service).inc()
        logger.error("config update rejected, keeping the last good config: %s", error)

    def _on_source_change(self) -> None:
        loop, changed = self._loop, self._changed
        if loop is None or changed is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            changed.set()
        else:
            loop.call_soon_threadsafe(changed.set)

    async def _reload_loop(self) -> None:
        assert self._changed is not None
        while True:
            await self._changed.wait()
            self._changed.clear()  # changes arriving during the reload trigger one more
            await self.reload()

    def _warn_unapplied(self, old: C, new: C) -> None:
        """Name each changed field that nothing applies until the next start: restart-only
        by its policy, or live but read by no follow, subscribe or view. Never its value:
        it may come from a Secret."""
        selects = [*self._observers.selects(), *self._views]
        reads = {path for s in selects for path in fields_read(s, old) | fields_read(s, new)}
        for path, policy in changed_fields(old, new):
            if policy is Reload.RESTART:
                logger.warning("%s changed at run time but takes effect only after a restart", path)
            elif not covered(tuple(path.split(".")), reads):
                logger.warning(
                    "%s changed at run time but nothing follows it: it takes effect only "
                    "after a restart",
                    path,
                )

    async def _stop_sources(self) -> None:
        sources, self._started_sources = self._started_sources, []
        for source in reversed(sources):
            try:
                await source.stop()
            except Exception:
                logger.exception("stopping a config source failed")


def _reason(error: Exception) -> str:
    return str(getattr(error, "message", None) or error) or type(error).__name__
