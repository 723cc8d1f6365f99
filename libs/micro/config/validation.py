"""Validate the merged mapping into the service's model; errors name field and file."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from micro.config.documents import ConfigDocument
from micro.config.environment import ENVIRONMENT_ORIGIN, PREFIX, SEPARATOR
from micro.config.errors import ConfigError
from micro.config.merge import origin_of

M = TypeVar("M", bound=BaseModel)


def validate(
    model: type[M],
    merged: Mapping[str, Any],
    documents: Sequence[ConfigDocument],
    *,
    prefix: tuple[str, ...] = (),
) -> M:
    """The merged mapping as `model`; `prefix` is where it sits when it is one section."""
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            describe_error(error, documents, prefix=prefix) for error in exc.errors()
        )
        raise ConfigError(f"invalid config: {problems}") from None


def describe_error(
    error: ErrorDetails, documents: Sequence[ConfigDocument], *, prefix: tuple[str, ...] = ()
) -> str:
    """`<field path> (from <file>): <message>`; a Secret's value is never quoted."""
    loc = [*prefix, *(part for part in error["loc"] if isinstance(part, str | int))]
    path = ".".join(str(part) for part in loc) or "(top level)"
    origin = origin_of(loc, documents)
    if origin is None:
        source = "not set by any source" if error["type"] == "missing" else "model defaults"
    elif origin.name == ENVIRONMENT_ORIGIN:
        source = f"from the environment, {_variable(loc)}"
    else:
        source = f"from {origin.name}"
    message = error["msg"]
    if origin is not None and origin.secret:
        # Validators may quote the input (e.g. "not a duration: 'x'"): keep only the kind.
        message = f"invalid value ({error['type']})"
    return f"{path} ({source}): {message}"


def _variable(loc: Sequence[str | int]) -> str:
    parts = []
    for part in loc:
        if not isinstance(part, str):
            break
        parts.append(part.upper())
    return PREFIX + SEPARATOR.join(parts)
