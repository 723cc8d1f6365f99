"""Which methods of a generated stub may be retried: the proto's idempotency_level."""

from __future__ import annotations

import sys
from types import ModuleType

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

_SAFE_TO_REPEAT = (
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
)


def stub_services(stub_class: type) -> list[ServiceDescriptor]:
    """The service descriptors of the *_pb2 modules the stub's *_pb2_grpc module imports,
    narrowed to the stub's own service ("UserServiceStub" -> "UserService") if found."""
    module = sys.modules.get(stub_class.__module__)
    services: list[ServiceDescriptor] = []
    for value in vars(module).values() if module else ():
        descriptor = getattr(value, "DESCRIPTOR", None)
        if isinstance(value, ModuleType) and isinstance(descriptor, FileDescriptor):
            services.extend(descriptor.services_by_name.values())
    own = [s for s in services if s.name == stub_class.__name__.removesuffix("Stub")]
    return own or services


def idempotent_methods(stub_class: type) -> frozenset[str]:
    """Full method paths ("/user_srv.v1.UserService/GetUser") marked NO_SIDE_EFFECTS
    (or IDEMPOTENT): calls that are safe to repeat on another instance."""
    return frozenset(
        f"/{service.full_name}/{method.name}"
        for service in stub_services(stub_class)
        for method in service.methods
        if method.GetOptions().idempotency_level in _SAFE_TO_REPEAT
    )
