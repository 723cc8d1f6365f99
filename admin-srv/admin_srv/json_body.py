"""Strict JSON request bodies in the protobuf JSON mapping: anything off is a 400 that
names the field."""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from micro.errors import ServiceError, invalid_argument

M = TypeVar("M", bound=Message)

# Far above any request message here; json.loads recurses once per level and a 16 KiB
# body holds thousands of them, enough to exhaust the interpreter's recursion limit.
MAX_DEPTH = 32

# A JSON string (to its closing quote, or to the end when unterminated), or a bracket.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"?|[\[\]{}]', re.DOTALL)

_UNKNOWN_FIELD = re.compile(r'has no field named "([^"]+)"')
_BAD_FIELD = re.compile(r"Failed to parse (\w+) field: (.*)", re.DOTALL)


def _json_name(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def parse_message(body: bytes, message: M) -> M:
    """Fill message from a JSON object body, refusing unknown fields and wrong types."""
    if not body.strip():
        raise invalid_argument(None, "request body: must be a JSON object, got nothing")
    if nested_deeper_than(body, MAX_DEPTH):
        raise invalid_argument(None, f"request body: nested deeper than {MAX_DEPTH} levels")
    try:
        document: Any = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise invalid_argument(None, "request body: not valid JSON") from None
    if not isinstance(document, dict):
        raise invalid_argument(
            None, f"request body: must be a JSON object, got {type(document).__name__}"
        )
    for name, value in document.items():
        if _unrepresentable(name):  # not echoed back: the answer could not carry it
            raise invalid_argument(None, "request body: a field name holds an unpaired surrogate")
        if problem := _unrepresentable(value):
            raise invalid_argument(name, problem)
    try:
        return json_format.ParseDict(document, message, ignore_unknown_fields=False)
    except json_format.ParseError as exc:
        raise _parse_error(str(exc), message) from None


def nested_deeper_than(body: bytes, limit: int) -> bool:
    """Whether arrays and objects in a JSON text nest deeper than `limit`, brackets
    inside strings aside; found without parsing, since json.loads recurses per level."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # too few brackets to go deeper
    depth = 0
    for match in _TOKEN.finditer(body):
        token = match[0]
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def _unrepresentable(value: Any) -> str | None:
    """What in a JSON value protobuf cannot hold: json_format fails on these with
    OverflowError or SystemError rather than its own ParseError."""
    if isinstance(value, float) and not math.isfinite(value):
        return "number out of range"
    if isinstance(value, str) and not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            return "string holds an unpaired surrogate"
    if isinstance(value, dict):
        return next(filter(None, map(_unrepresentable, [*value, *value.values()])), None)
    if isinstance(value, list):
        return next(filter(None, map(_unrepresentable, value)), None)
    return None


def _parse_error(text: str, message: Message) -> ServiceError:
    if match := _UNKNOWN_FIELD.search(text):
        known = ", ".join(f.json_name for f in message.DESCRIPTOR.fields)
        return invalid_argument(match[1], f"unknown field (known: {known})")
    if match := _BAD_FIELD.search(text):
        field = _json_name(match[1])
        detail = match[2].split(" at ")[0].strip().rstrip(".")
        return invalid_argument(field, detail)
    return invalid_argument(None, f"request body: {text.splitlines()[0]}")


def message_json(message: Message) -> dict[str, Any]:
    """The protobuf JSON mapping with its defaults, as grpcurl prints it."""
    return json_format.MessageToDict(message)
