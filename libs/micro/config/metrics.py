"""Prometheus metrics for configuration reloads."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONFIG_VALID = Gauge(
    "micro_config_valid",
    "1 when the latest configuration sources validated, 0 while a rejected update is pending",
    ["service"],
)
CONFIG_RELOAD_ERRORS = Counter(
    "micro_config_reload_errors_total",
    "Configuration updates rejected (the last good configuration stays in effect)",
    ["service"],
)
