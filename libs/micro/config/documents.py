"""A config document: one parsed file (local, or a ConfigMap/Secret key) and where it came from."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml

from micro.config.errors import ConfigError

logger = logging.getLogger("micro.config")

# Extension -> format name, as it appears in the `config loaded:` log line.
FORMATS: Mapping[str, str] = {".yaml": "yaml", ".yml": "yaml", ".json": "json"}


@dataclass(frozen=True)
class ConfigDocument:
    """The mapping one file contributes, named as it is reported in errors and logs."""

    name: str
    format: str
    data: Mapping[str, Any]
    secret: bool = field(default=False)


def format_of(name: str) -> str | None:
    """The format a file name's extension selects, or None when it is not a config file."""
    return FORMATS.get(PurePosixPath(name).suffix.lower())


def parse_document(name: str, text: str, *, secret: bool = False) -> ConfigDocument | None:
    """Parse `text` by the extension of `name`; None (with a warning) for an unknown one.

    Errors never quote the content of a Secret: only the file name and the position.
    """
    fmt = format_of(name)
    if fmt is None:
        logger.warning("config skipped: %s: unknown extension (use .yaml, .yml or .json)", name)
        return None
    try:
        data = json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except (yaml.YAMLError, ValueError) as exc:
        raise ConfigError(f"{name}: invalid {fmt}: {_describe_parse_error(exc, secret)}") from None
    except RecursionError:
        # Both parsers recurse per nesting level: a deep document must be a bad update, not
        # an exception that escapes the reload and loses the last good config.
        raise ConfigError(f"{name}: invalid {fmt}: nested too deeply") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{name}: the top level must be a mapping of sections, not {type(data).__name__}"
        )
    logger.debug("config loaded: %s format: %s", name, fmt)
    return ConfigDocument(name=name, format=fmt, data=data, secret=secret)


def _describe_parse_error(exc: Exception, secret: bool) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    if secret:
        return f"syntax error{where}"
    problem = getattr(exc, "problem", None)
    return f"{problem or 'syntax error'}{where}"
