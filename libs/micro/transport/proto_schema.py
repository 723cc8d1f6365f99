"""JSON Schemas of protobuf messages in the protobuf JSON mapping, for OpenAPI documents.

Field names and types come from the message descriptor, so a document cannot drift from
the .proto; what the use cases enforce on top (required fields, lengths, patterns) is
given per field by its JSON name. A request schema follows what
`google.protobuf.json_format.ParseDict` accepts: an enum by name or number, a 64-bit
integer as a number or a string, null for a field that may be left out, and no unknown
field. A reply schema follows `MessageToDict`: enums by name, 64-bit integers as
strings, and fields at their default value left out unless declared `required`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

Schema = dict[str, Any]

_INT32 = {"minimum": -(2**31), "maximum": 2**31 - 1}
_UINT32 = {"minimum": 0, "maximum": 2**32 - 1}
_INT64 = {"minimum": -(2**63), "maximum": 2**63 - 1}
_UINT64 = {"minimum": 0, "maximum": 2**64 - 1}
_RANGES: dict[int, Mapping[str, int]] = {
    FieldDescriptor.TYPE_INT32: _INT32,
    FieldDescriptor.TYPE_SINT32: _INT32,
    FieldDescriptor.TYPE_SFIXED32: _INT32,
    FieldDescriptor.TYPE_UINT32: _UINT32,
    FieldDescriptor.TYPE_FIXED32: _UINT32,
    FieldDescriptor.TYPE_INT64: _INT64,
    FieldDescriptor.TYPE_SINT64: _INT64,
    FieldDescriptor.TYPE_SFIXED64: _INT64,
    FieldDescriptor.TYPE_UINT64: _UINT64,
    FieldDescriptor.TYPE_FIXED64: _UINT64,
}
_WIDE = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED64,
    }
)
# Well-known types with a JSON form of their own.
_WELL_KNOWN: dict[str, Schema] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?s$"},
}


def _scalar(field: FieldDescriptor, *, request: bool) -> Schema:
    kind = field.type
    if kind in _RANGES:
        number = {"type": "integer", **_RANGES[kind]}
        if kind not in _WIDE:
            return number
        digits = {"type": "string", "pattern": "^-?[0-9]+$"}
        return {"anyOf": [number, digits]} if request else digits
    if kind == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return {"type": "number"}
    if kind == FieldDescriptor.TYPE_BYTES:
        return {"type": "string", "contentEncoding": "base64"}
    if field.enum_type is not None:
        values = field.enum_type.values
        names = {"type": "string", "enum": [v.name for v in values]}
        numbers = {"type": "integer", "enum": [v.number for v in values]}
        return {"anyOf": [names, numbers]} if request else names
    if field.message_type is not None:
        known = _WELL_KNOWN.get(field.message_type.full_name)
        return dict(known) if known else message_schema(field.message_type, request=request)
    return {"type": "string"}


def _field_schema(field: FieldDescriptor, *, request: bool) -> Schema:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = field.message_type.fields_by_name["value"]
        return {"type": "object", "additionalProperties": _scalar(value, request=request)}
    item = _scalar(field, request=request)
    if field.is_repeated:
        return {"type": "array", "items": item}
    return item


def _nullable(schema: Schema) -> Schema:
    if "anyOf" not in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    rest = {key: value for key, value in schema.items() if key != "anyOf"}
    return {**rest, "anyOf": [*schema["anyOf"], {"type": "null"}]}


def message_schema(
    descriptor: Descriptor,
    *,
    request: bool,
    required: Iterable[str] = (),
    constraints: Mapping[str, Schema] | None = None,
    title: str | None = None,
) -> Schema:
    """The JSON Schema of a message; `required` and `constraints` name fields by JSON name
    (constraints are merged into the field's schema, e.g. {"maxLength": 64})."""
    constraints = constraints or {}
    required = list(required)
    names = {f.json_name for f in descriptor.fields}
    unknown = (set(required) | set(constraints)) - names
    if unknown:
        raise ValueError(f"{descriptor.full_name} has no field {', '.join(sorted(unknown))}")
    properties: Schema = {}
    for field in descriptor.fields:
        schema = {**_field_schema(field, request=request), **constraints.get(field.json_name, {})}
        # ParseDict reads null as the field's default: a field that may be left out may be null.
        if request and field.json_name not in required:
            schema = _nullable(schema)
        properties[field.json_name] = schema
    document: Schema = {
        "title": title or descriptor.name,
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        document["required"] = required
    return document


def json_request_body(schema: Schema, *, description: str = "") -> dict[str, Any]:
    """`openapi_extra=` of a route whose handler parses the raw JSON body itself."""
    body: dict[str, Any] = {"required": True, "content": {"application/json": {"schema": schema}}}
    if description:
        body["description"] = description
    return {"requestBody": body}


def json_reply(schema: Schema, description: str = "The reply") -> dict[str, Any]:
    """The 200 entry of a route's `responses=` for a reply built as a JSON dict."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}
