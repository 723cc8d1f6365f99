"""gRPC clients of other services, discovered and balanced."""

from micro.client.balanced import BalancedChannel
from micro.client.factory import ClientFactory
from micro.client.idempotency import idempotent_methods
from micro.client.pool import InstancePool

__all__ = ["BalancedChannel", "ClientFactory", "InstancePool", "idempotent_methods"]
