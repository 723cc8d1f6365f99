"""OpenTelemetry tracing: spans always (so logs carry trace ids), export only when asked.

W3C trace context (traceparent/tracestate) travels in HTTP headers and in gRPC metadata
(the same lower-case keys), so a trace crosses HTTP -> gRPC -> gRPC unbroken.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping, MutableMapping

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from micro.config.model import TracingConfig

TRACER_NAME = "micro"
_log = logging.getLogger(__name__)
_provider: TracerProvider | None = None


def setup_tracing(
    config: TracingConfig, *, service_name: str, service_version: str, instance_id: str
) -> TracerProvider:
    """Install the process's tracer provider once; later calls answer the same one."""
    global _provider
    if _provider is not None:
        return _provider
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.version": service_version,
            "service.instance.id": instance_id,
        }
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sample_ratio))
    )
    if config.otlp_endpoint:
        # Imported here: the exporter pulls in its own gRPC channel machinery.
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter(endpoint=config.otlp_endpoint, insecure=True)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        _log.info("tracing: exporting spans over OTLP to %s", config.otlp_endpoint)
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


def flush_tracing() -> None:
    """Export spans still queued (the provider itself shuts down at process exit)."""
    if _provider is not None:
        _provider.force_flush()


def tracer() -> trace.Tracer:
    # Before setup_tracing this is the API's proxy tracer: spans without ids until a
    # provider is installed, then the provider's tracer.
    return _tracer_of(trace.get_tracer_provider())


# One tracer per provider, kept: the SDK's get_tracer builds its scope objects and
# re-registers a warnings filter on every call (which also resets the warnings caches);
# asked per request, that was the largest part of the server chain's span cost.
@functools.lru_cache(maxsize=1)
def _tracer_of(provider: trace.TracerProvider) -> trace.Tracer:
    return provider.get_tracer(TRACER_NAME)


def extract(carrier: Mapping[str, str]) -> otel_context.Context:
    """The remote parent context carried in headers or metadata (keys lower-case)."""
    return propagate.extract(carrier)


def inject_metadata(metadata: MutableMapping[str, str]) -> None:
    """Add the current trace context to outgoing headers or metadata."""
    propagate.inject(metadata)
