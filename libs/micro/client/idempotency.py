"""Which methods of a generated stub may be retried: the proto's idempotency_level."""

from __future__ import annotations

from google.protobuf import descriptor_pb2

from micro.descriptors import stub_services

_SAFE_TO_REPEAT = (
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
)


def idempotent_methods(stub_class: type) -> frozenset[str]:
    """Full method paths ("/user_srv.v1.UserService/GetUser") marked NO_SIDE_EFFECTS
    (or IDEMPOTENT): calls that are safe to repeat on another instance."""
    return frozenset(
        f"/{service.full_name}/{method.name}"
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
