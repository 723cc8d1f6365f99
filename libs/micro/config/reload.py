"""Reload policy: whether a config field is applied while the service runs, or at restart.

Each field declares it in the model: `Annotated[T, Reload.LIVE]` (or `Reload.RESTART`) on
the field, else the `reload_policy` of its section class. A field with neither counts as
restart-only, since nothing applies a change unless someone wrote the code that does;
`undeclared_fields` lists such fields so a test can demand a deliberate choice.

A field whose type is a section (or an optional section) is a folder: its own fields carry
the policy, and only its appearing or disappearing is judged by its own declaration.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo


class Reload(enum.Enum):
    LIVE = "live"  # applied at run time, by an observer or a read per call
    RESTART = "restart"  # read once at start


UNDECLARED_POLICY = Reload.RESTART


@dataclass(frozen=True)
class FieldRef:
    """One field of a config model, with where it sits and the class that holds it."""

    path: tuple[str, ...]
    owner: type[BaseModel]
    name: str
    info: FieldInfo

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def declared_policy(self) -> Reload | None:
        return declared_policy(self.owner, self.name)

    @property
    def policy(self) -> Reload:
        return policy_of(self.owner, self.name)

    @property
    def section(self) -> type[BaseModel] | None:
        """The section class when this field is a folder of further fields."""
        return section_type(self.info.annotation)


def declared_policy(owner: type[BaseModel], name: str) -> Reload | None:
    """The field's own marker, else its section class's `reload_policy`, else None."""
    for marker in owner.model_fields[name].metadata:
        if isinstance(marker, Reload):
            return marker
    section_default = getattr(owner, "reload_policy", None)
    return section_default if isinstance(section_default, Reload) else None


def policy_of(owner: type[BaseModel], name: str) -> Reload:
    return declared_policy(owner, name) or UNDECLARED_POLICY


def section_type(annotation: Any) -> type[BaseModel] | None:
    """`S` for a field typed `S` or `S | None` where S is a model; None otherwise."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        models = [a for a in get_args(annotation) if a is not type(None)]
        if len(models) == 1:
            return section_type(models[0])
    return None


def walk_fields(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[FieldRef]:
    """Every field, depth first: a section field, then the fields inside it."""
    for name, info in model.model_fields.items():
        field = FieldRef((*prefix, name), model, name, info)
        yield field
        if field.section is not None:
            yield from walk_fields(field.section, field.path)


def undeclared_fields(model: type[BaseModel]) -> list[str]:
    """Paths of the fields whose changes nobody decided about: neither a marker nor a
    section default. A required section field (never absent) needs no policy itself."""
    return [
        field.dotted
        for field in walk_fields(model)
        if field.declared_policy is None and not _always_present_section(field)
    ]


def _always_present_section(field: FieldRef) -> bool:
    return isinstance(field.info.annotation, type) and field.section is not None


def changed_fields(old: BaseModel, new: BaseModel) -> list[tuple[str, Reload]]:
    """The paths that differ between two configs of one model, each with its policy; a
    section present in both is compared field by field."""
    return list(_changes(old, new, ()))


def _changes(
    old: BaseModel, new: BaseModel, prefix: tuple[str, ...]
) -> Iterator[tuple[str, Reload]]:
    model = type(new)
    for name in model.model_fields:
        before, after = getattr(old, name), getattr(new, name)
        if before == after:
            continue
        path = (*prefix, name)
        if isinstance(before, BaseModel) and type(before) is type(after):
            yield from _changes(before, after, path)
        else:
            yield ".".join(path), policy_of(model, name)
