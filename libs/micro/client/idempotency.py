"""Which methods of a generated stub may be retried: the proto's idempotency_level, or
the `(micro.v1.idempotency_key)` option of a method whose server keeps each call's
outcome per idempotency key, so that a keyed repeat is the same call."""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor

from micro.descriptors import stub_services
from micro.errors import invalid_argument

_SAFE_TO_REPEAT = (
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
)
# The method option in proto/api/micro/v1/options.proto.
KEYED_OPTION = "micro.v1.idempotency_key"
# The gRPC metadata key of a call's idempotency key between services.
IDEMPOTENCY_KEY_METADATA = "x-idempotency-key"
MAX_KEY_LENGTH = 64
_KEY_CHARACTERS = frozenset(string.ascii_letters + string.digits + "-_.:")
# The same rule as check_key's, for schemas (an OpenAPI header's pattern).
KEY_PATTERN = rf"^[A-Za-z0-9_.:-]{{1,{MAX_KEY_LENGTH}}}$"

# The key of the request being served, when its caller sent one: the calls made for it
# derive their keys from it, so that a repeat of that request repeats them with the same keys.
_serving_key: ContextVar[str | None] = ContextVar("micro_idempotency_key", default=None)


def idempotent_methods(stub_class: type) -> frozenset[str]:
    """Full method paths ("/user_srv.v1.UserService/GetUser") marked NO_SIDE_EFFECTS
    (or IDEMPOTENT): calls that are safe to repeat on another instance."""
    return frozenset(
        _path(service.full_name, method)
        for service in stub_services(stub_class)
        for method in service.methods
        if method.GetOptions().idempotency_level in _SAFE_TO_REPEAT
    )


def no_side_effect_methods(stub_class: type) -> frozenset[str]:
    """Full method paths marked NO_SIDE_EFFECTS only: reads, which may also run twice at
    once (a hedge); an IDEMPOTENT call may be repeated, but not raced with itself."""
    return frozenset(
        f"/{service.full_name}/{method.name}"
        for service in stub_services(stub_class)
        for method in service.methods
        if method.GetOptions().idempotency_level == descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS
    )


def keyed_methods(stub_class: type) -> frozenset[str]:
    """Full method paths declared `(micro.v1.idempotency_key) = true`: each call carries
    a key, and its repeats (the same key) are safe on another instance."""
    option = _keyed_option()
    if option is None:  # no contract in this process declares a keyed method
        return frozenset()
    return frozenset(
        _path(service.full_name, method)
        for service in stub_services(stub_class)
        for method in service.methods
        # Found by name, not through api's generated module (micro does not import it).
        if method.GetOptions().Extensions[option]  # type: ignore[index]
    )


def _keyed_option() -> FieldDescriptor | None:
    try:
        return descriptor_pool.Default().FindExtensionByName(KEYED_OPTION)
    except KeyError:
        return None


def _path(service: str, method: MethodDescriptor) -> str:
    return f"/{service}/{method.name}"


def new_key(method: str) -> str:
    """A key for one logical call of `method`: 128 random bits, or, while serving a keyed
    request, a hash of that request's key and the method (the same on its repeats)."""
    parent = _serving_key.get()
    if parent is None:
        return secrets.token_hex(16)
    return hashlib.sha256(f"{parent}\n{method}".encode()).hexdigest()[:32]


def check_key(key: str, name: str) -> None:
    """A key as a client sends it (1-64 letters, digits or -_.:), else INVALID_ARGUMENT
    naming where it came from (`name`: the header or metadata key)."""
    if not 0 < len(key) <= MAX_KEY_LENGTH or not set(key) <= _KEY_CHARACTERS:
        raise invalid_argument(
            name, f"must be one value of 1-{MAX_KEY_LENGTH} letters, digits or -_.:"
        )


@contextmanager
def serving_key(key: str | None) -> Iterator[None]:
    """Inside the block, outgoing keyed calls derive their keys from `key` (the key of
    the request being served; None: random keys)."""
    token = _serving_key.set(key)
    try:
        yield
    finally:
        _serving_key.reset(token)


def keyed_metadata(metadata: Any, method: str) -> Any:
    """The call's metadata with an idempotency key: the caller's own when it set one, else
    a new one (see new_key). Read once per logical call, so its repeats share the key."""
    if any(name == IDEMPOTENCY_KEY_METADATA for name, _ in metadata or ()):
        return metadata
    keyed = grpc.aio.Metadata(*(metadata or ()))
    keyed.add(IDEMPOTENCY_KEY_METADATA, new_key(method))
    return keyed
