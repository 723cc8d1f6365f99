"""Which fields of a config a selector reads, so a run-time change nobody follows can be named.

The selector runs on a recording stand-in of the config: each model field it touches is
noted by its path. Only the deepest paths count (`c.server.http.origins` reads
server.http.origins, not all of server), except that calling a method of a model
(`c.greeting.model_dump()`) reads all of it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from pydantic import BaseModel

Path = tuple[str, ...]
EVERYTHING: Path = ()  # what a selector that cannot be traced counts as reading


class _Recorder:
    """Stands in for a model: field reads are noted; sub-models are recorded in turn."""

    __slots__ = ("_model", "_path", "_seen", "_whole")

    def __init__(self, model: BaseModel, path: Path, seen: set[Path], whole: set[Path]) -> None:
        self._model = model
        self._path = path
        self._seen = seen
        self._whole = whole

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._model, name)
        if name not in type(self._model).model_fields:
            self._whole.add(self._path)  # a method or property may read the whole model
            return value
        path = (*self._path, name)
        self._seen.add(path)
        if isinstance(value, BaseModel):
            return _Recorder(value, path, self._seen, self._whole)
        return value


def fields_read(select: Callable[[Any], object], config: BaseModel) -> set[Path]:
    """The deepest field paths select reads on config; EVERYTHING when it cannot run on
    the stand-in, so that an untraceable selector never causes a false warning."""
    seen: set[Path] = set()
    whole: set[Path] = set()
    try:
        select(_Recorder(config, (), seen, whole))
    except Exception:
        return {EVERYTHING}
    return whole | {path for path in seen if not any(_under(other, path) for other in seen)}


def covered(changed: Path, reads: Iterable[Path]) -> bool:
    """True when a read path lies under or over the changed one (a section that appears
    or disappears changes every field read inside it)."""
    return any(changed[: len(read)] == read or read[: len(changed)] == changed for read in reads)


def _under(path: Path, parent: Path) -> bool:
    return len(path) > len(parent) and path[: len(parent)] == parent
