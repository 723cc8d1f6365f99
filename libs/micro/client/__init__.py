"""gRPC clients of other services, discovered and balanced."""

from micro.client.balanced import BalancedChannel
from micro.client.factory import ClientFactory
from micro.client.idempotency import idempotent_methods, keyed_methods
from micro.client.pool import InstancePool
from micro.client.settings import CallSettings

__all__ = [
    "BalancedChannel",
    "CallSettings",
    "ClientFactory",
    "InstancePool",
    "idempotent_methods",
    "keyed_methods",
]
