"""Just enough of Kubernetes' protobuf encoding to read the bodies kubectl's typed clients
send as protobuf: reviews (`kubectl auth can-i`, `whoami`) and the simple kinds its
generators create (`kubectl create namespace|configmap|secret|serviceaccount`).
Answers are always JSON, which those clients accept too."""

from __future__ import annotations

import base64
from typing import Any

from devcluster.apiserver.status import bad_request

MAGIC = b"k8s\x00"
Fields = dict[int, list[Any]]


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if position >= len(data):
            raise bad_request("truncated protobuf varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7


def fields(data: bytes) -> Fields:
    """Field number -> values (ints for varints, bytes for length-delimited fields)."""
    found: Fields = {}
    position = 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        value: Any
        if wire_type == 0:
            value, position = _varint(data, position)
        elif wire_type == 2:
            length, position = _varint(data, position)
            value, position = data[position : position + length], position + length
        elif wire_type == 1:
            value, position = data[position : position + 8], position + 8
        elif wire_type == 5:
            value, position = data[position : position + 4], position + 4
        else:
            raise bad_request(f"unsupported protobuf wire type {wire_type}")
        found.setdefault(number, []).append(value)
    return found


def _text(found: Fields, number: int) -> str:
    values = found.get(number)
    return values[-1].decode() if values else ""


def _message(found: Fields, number: int) -> Fields | None:
    values = found.get(number)
    return fields(values[-1]) if values else None


def decode_review(body: bytes) -> dict[str, Any]:
    """A SelfSubjectAccessReview / SelfSubjectReview in k8s protobuf framing, as JSON."""
    if not body.startswith(MAGIC):
        raise bad_request("protobuf body without the k8s envelope")
    unknown = fields(body[len(MAGIC) :])
    raw = unknown.get(2, [b""])[-1]
    review = fields(raw)
    spec = _message(review, 2) or {}
    result: dict[str, Any] = {"spec": {}}
    resource = _message(spec, 1)
    if resource is not None:
        names = ("namespace", "verb", "group", "version", "resource", "subresource", "name")
        result["spec"]["resourceAttributes"] = {
            name: _text(resource, number) for number, name in enumerate(names, start=1)
        }
    non_resource = _message(spec, 2)
    if non_resource is not None:
        result["spec"]["nonResourceAttributes"] = {
            "path": _text(non_resource, 1),
            "verb": _text(non_resource, 2),
        }
    return result


# Field numbers from k8s.io/api generated.proto, for the kinds kubectl's generators send.
# Each entry: field number -> (JSON name, how to decode it).
Schema = dict[int, tuple[str, Any]]
_MAP = "map"  # map<string, string>
_BYTES_MAP = "bytes-map"  # map<string, bytes>, base64 in JSON
_STRINGS = "strings"  # repeated string
OBJECT_META: Schema = {
    1: ("name", str),
    2: ("generateName", str),
    3: ("namespace", str),
    5: ("uid", str),
    6: ("resourceVersion", str),
    11: ("labels", _MAP),
    12: ("annotations", _MAP),
    14: ("finalizers", _STRINGS),
}
_NAME_REFERENCE: Schema = {1: ("name", str)}
KINDS: dict[str, Schema] = {
    "Namespace": {1: ("metadata", OBJECT_META), 2: ("spec", {1: ("finalizers", _STRINGS)})},
    "ConfigMap": {
        1: ("metadata", OBJECT_META),
        2: ("data", _MAP),
        3: ("binaryData", _BYTES_MAP),
        4: ("immutable", bool),
    },
    "Secret": {
        1: ("metadata", OBJECT_META),
        2: ("data", _BYTES_MAP),
        3: ("type", str),
        4: ("stringData", _MAP),
        5: ("immutable", bool),
    },
    "ServiceAccount": {
        1: ("metadata", OBJECT_META),
        3: ("imagePullSecrets", [_NAME_REFERENCE]),
        4: ("automountServiceAccountToken", bool),
    },
}


def _decode(data: bytes, schema: Schema) -> dict[str, Any]:
    found = fields(data)
    result: dict[str, Any] = {}
    for number, values in found.items():
        if number not in schema:
            continue
        name, how = schema[number]
        if how is str:
            if values[-1]:  # Go marshals empty strings; its JSON omits them (omitempty)
                result[name] = values[-1].decode()
        elif how is bool:
            result[name] = bool(values[-1])
        elif how in (_MAP, _BYTES_MAP):
            entries = result.setdefault(name, {})
            for entry in values:
                pair = fields(entry)
                key = pair.get(1, [b""])[-1].decode()
                value = pair.get(2, [b""])[-1]
                entries[key] = (
                    base64.b64encode(value).decode() if how == _BYTES_MAP else value.decode()
                )
        elif how == _STRINGS:
            result[name] = [value.decode() for value in values]
        elif isinstance(how, list):
            result[name] = [_decode(value, how[0]) for value in values]
        else:
            result[name] = _decode(values[-1], how)
    return result


def decode_object(body: bytes) -> dict[str, Any]:
    """One of KINDS from its k8s protobuf envelope, as the JSON object it stands for."""
    if not body.startswith(MAGIC):
        raise bad_request("protobuf body without the k8s envelope")
    unknown = fields(body[len(MAGIC) :])
    type_meta = _message(unknown, 1) or {}
    api_version, kind = _text(type_meta, 1), _text(type_meta, 2)
    if kind not in KINDS:
        raise UnsupportedKind(kind)
    obj = _decode(unknown.get(2, [b""])[-1], KINDS[kind])
    return {"apiVersion": api_version, "kind": kind, **obj}


class UnsupportedKind(Exception):
    """A protobuf body of a kind this module has no schema for."""
