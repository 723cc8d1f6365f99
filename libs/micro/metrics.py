"""Prometheus metrics for servers and clients: request counts, errors, latency.

Servers call `observe_server`, the client factory calls `observe_client` (or uses the
interceptors in micro.transport.client_interceptors, which do). Errors are the
requests whose code is not OK; they are also counted on their own for simple alerts.
`/metrics` serves `render()`.
"""

from __future__ import annotations

from typing import NamedTuple

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

# Buckets for calls that usually take milliseconds and are cut off at a few seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

SERVER_REQUESTS = Counter(
    "micro_server_requests",
    "Requests handled, by transport (grpc, http), method or route, and gRPC code.",
    ["transport", "method", "code"],
)
SERVER_ERRORS = Counter(
    "micro_server_errors",
    "Requests that ended with a code other than OK.",
    ["transport", "method", "code"],
)
SERVER_LATENCY = Histogram(
    "micro_server_request_duration_seconds",
    "Time to handle a request, by transport and method or route.",
    ["transport", "method"],
    buckets=LATENCY_BUCKETS,
)
CLIENT_REQUESTS = Counter(
    "micro_client_requests",
    "Outgoing calls, by target service, method and gRPC code.",
    ["service", "method", "code"],
)
CLIENT_ERRORS = Counter(
    "micro_client_errors",
    "Outgoing calls that ended with a code other than OK.",
    ["service", "method", "code"],
)
CLIENT_LATENCY = Histogram(
    "micro_client_request_duration_seconds",
    "Time of an outgoing call, by target service and method.",
    ["service", "method"],
    buckets=LATENCY_BUCKETS,
)
CLIENT_HEDGES_SENT = Counter(
    "micro_client_hedges_sent",
    "Hedged attempts sent because the first attempt was slow, by target service.",
    ["service"],
)
CLIENT_PROBES_SENT = Counter(
    "micro_client_probes_sent",
    "Copies of calls without side effects sent to an idle instance to learn its latency"
    " while the call went elsewhere, by target service.",
    ["service"],
)
CLIENT_HEDGES_WON = Counter(
    "micro_client_hedges_won",
    "Hedged attempts whose answer was used, by target service.",
    ["service"],
)

CLIENT_EJECTIONS = Counter(
    "micro_client_ejections",
    "Instances ejected as outliers, by target service (the per-instance state is in the"
    " micro_client_endpoint_* gauges).",
    ["service"],
)
CLIENT_BREAKER_SHED_PROBABILITY = Gauge(
    "micro_client_breaker_shed_probability",
    "Share of calls the client's adaptive breaker refuses now, by target service and"
    " method (0: closed).",
    ["service", "method"],
)
CLIENT_BREAKER_REJECTIONS = Counter(
    "micro_client_breaker_rejections",
    "Calls refused by the client's adaptive breaker, by target service and method.",
    ["service", "method"],
)
CLIENT_RETRY_BUDGET_TOKENS = Gauge(
    "micro_client_retry_budget_tokens",
    "Retries (and hedges) the retry budget allows now, by target service.",
    ["service"],
)
CLIENT_RETRY_BUDGET_DENIED = Counter(
    "micro_client_retry_budget_denied",
    "Retries or hedges not sent for want of retry budget, by target service.",
    ["service"],
)


class _ServerChildren(NamedTuple):
    requests: Counter
    errors: Counter | None  # None for OK
    latency: Histogram


# `.labels()` checks the label values and looks the child up under the metric's lock on
# every call; a server sees a bounded set of (transport, method or route, code), so each
# combination's children are looked up once and kept. micro never removes children, so
# a kept child is always the registered one.
_server_children: dict[tuple[str, str, str], _ServerChildren] = {}


def _children_for(transport: str, method: str, code: str) -> _ServerChildren:
    key = (transport, method, code)
    children = _server_children.get(key)
    if children is None:
        children = _ServerChildren(
            SERVER_REQUESTS.labels(transport, method, code),
            SERVER_ERRORS.labels(transport, method, code) if code != "OK" else None,
            SERVER_LATENCY.labels(transport, method),
        )
        _server_children[key] = children
    return children


def observe_server(transport: str, method: str, code: str, seconds: float) -> None:
    children = _children_for(transport, method, code)
    children.requests.inc()
    if children.errors is not None:
        children.errors.inc()
    children.latency.observe(seconds)


def observe_client(service: str, method: str, code: str, seconds: float) -> None:
    CLIENT_REQUESTS.labels(service, method, code).inc()
    if code != "OK":
        CLIENT_ERRORS.labels(service, method, code).inc()
    CLIENT_LATENCY.labels(service, method).observe(seconds)


def render(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The exposition text and its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST
