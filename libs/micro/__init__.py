"""The shared service framework: config, registry, discovery, servers, health, logs, metrics,
tracing and the lifecycle that ties them together (see docs/framework.md)."""
