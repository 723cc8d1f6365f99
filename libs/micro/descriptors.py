"""The gRPC services a piece of generated code serves or calls, from its descriptors, so
that no service name is typed by hand."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor


def module_services(module_name: str) -> list[ServiceDescriptor]:
    """The services of the *_pb2 modules that a generated *_pb2_grpc module imports."""
    module = sys.modules.get(module_name)
    services: list[ServiceDescriptor] = []
    for value in vars(module).values() if module else ():
        descriptor = getattr(value, "DESCRIPTOR", None)
        if isinstance(value, ModuleType) and isinstance(descriptor, FileDescriptor):
            services.extend(descriptor.services_by_name.values())
    return services


def stub_services(stub_class: type) -> list[ServiceDescriptor]:
    """The services of a stub's module, narrowed to the stub's own ("UserServiceStub" ->
    "UserService") if found."""
    services = module_services(stub_class.__module__)
    own = [s for s in services if s.name == stub_class.__name__.removesuffix("Stub")]
    return own or services


def served_service(add_to_server: Callable[..., Any]) -> ServiceDescriptor:
    """The service a generated `add_XServicer_to_server` registers: X's descriptor."""
    name = add_to_server.__name__.removeprefix("add_").removesuffix("Servicer_to_server")
    for service in module_services(add_to_server.__module__):
        if service.name == name:
            return service
    raise TypeError(f"{add_to_server!r} is not a generated add_*Servicer_to_server function")
