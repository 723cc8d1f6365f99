"""Environment overrides: MICRO__<SECTION>__<KEY>=value, double underscore nests."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from micro.config.documents import ConfigDocument

PREFIX = "MICRO__"
SEPARATOR = "__"
ENVIRONMENT_ORIGIN = "environment"


def environment_document(env: Mapping[str, str]) -> ConfigDocument:
    """The overrides found in `env` as one document, applied after every other source.

    Keys are lower-cased (MICRO__SERVER__HTTP__ADDR sets server.http.addr). Values stay
    strings, which pydantic converts to the field's type ("3" -> 3, "true" -> True),
    except a value starting with `[` or `{` that parses as JSON, so lists can be set.
    """
    data: dict[str, Any] = {}
    for name in sorted(env):
        if not name.startswith(PREFIX):
            continue
        path = [part.lower() for part in name[len(PREFIX) :].split(SEPARATOR)]
        if not all(path):
            continue  # MICRO__ alone or an empty segment: not an override
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = _value(env[name])
    return ConfigDocument(name=ENVIRONMENT_ORIGIN, format="env", data=data)


def _value(raw: str) -> Any:
    if raw.lstrip().startswith(("[", "{")):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw
