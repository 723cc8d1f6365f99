"""`${NAME}` and `${NAME:default}` in config values, expanded from the environment."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from micro.config.errors import ConfigError

_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([^}]*))?\}")


def expand_placeholders(data: Any, env: Mapping[str, str], *, origin: str) -> Any:
    """A copy of `data` with every placeholder in its string values replaced.

    Only values are expanded (never keys), after parsing, so an expanded value cannot
    change the structure of the file. A placeholder without a default whose variable is
    unset is an error naming the file.
    """
    if isinstance(data, str):
        return _expand_string(data, env, origin)
    if isinstance(data, dict):
        return {key: expand_placeholders(value, env, origin=origin) for key, value in data.items()}
    if isinstance(data, list):
        return [expand_placeholders(item, env, origin=origin) for item in data]
    return data


def _expand_string(value: str, env: Mapping[str, str], origin: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{origin}: ${{{name}}} is not set in the environment and has no default")

    return _PLACEHOLDER.sub(replace, value)
