"""Just enough of Kubernetes' protobuf encoding to read the review requests kubectl sends
as protobuf (`kubectl auth can-i`, `kubectl auth whoami`); answers are always JSON."""

from __future__ import annotations

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
