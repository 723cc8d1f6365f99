"""Gauges of every live pool's endpoints, read when Prometheus scrapes: nothing is
recorded per call, and an endpoint discovery removed leaves no series behind."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from micro.client.pool import InstancePool


class PoolCollector(Collector):
    def __init__(self) -> None:
        self._pools: weakref.WeakSet[InstancePool] = weakref.WeakSet()

    def add(self, pool: InstancePool) -> None:
        self._pools.add(pool)

    def discard(self, pool: InstancePool) -> None:
        self._pools.discard(pool)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["service", "endpoint"]
        latency = GaugeMetricFamily(
            "micro_client_endpoint_latency_ewma_seconds",
            "Peak-EWMA latency of an instance as the balancer sees it.",
            labels=labels,
        )
        success = GaugeMetricFamily(
            "micro_client_endpoint_success_ewma",
            "EWMA success rate of an instance as the balancer sees it.",
            labels=labels,
        )
        in_flight = GaugeMetricFamily(
            "micro_client_endpoint_in_flight", "Calls in flight to an instance.", labels=labels
        )
        ejected = GaugeMetricFamily(
            "micro_client_endpoint_ejected",
            "1 while an instance is ejected as an outlier.",
            labels=labels,
        )
        endpoints = GaugeMetricFamily(
            "micro_client_endpoints",
            "Instances of a target service by state (in, ejected).",
            labels=["service", "state"],
        )
        for pool in list(self._pools):
            out = 0
            for endpoint in pool.endpoints():
                key = [pool.service_name, endpoint.target]
                if endpoint.load.latency_s is not None:  # no answer yet: no estimate
                    latency.add_metric(key, endpoint.load.latency_s)
                success.add_metric(key, endpoint.load.success)
                in_flight.add_metric(key, endpoint.outstanding)
                ejected.add_metric(key, 1.0 if endpoint.outlier.ejected else 0.0)
                out += endpoint.outlier.ejected
            endpoints.add_metric([pool.service_name, "in"], len(pool.endpoints()) - out)
            endpoints.add_metric([pool.service_name, "ejected"], out)
        yield from (latency, success, in_flight, ejected, endpoints)


POOLS = PoolCollector()
REGISTRY.register(POOLS)
