"""Structured logs: one line per event carrying the service and trace fields.

Text lines follow the Go-Micro example's format:

    INFO service.id=user-srv-5fc4d-sm9g4 service.name=go-micro.user-srv service.version=v1
    ts=2023-09-24T04:58:55.120Z caller=transport/grpc.py:206 trace_id=... span_id=...
    msg=[gRPC] server listening on: 0.0.0.0:9090

(on one line). With log.format=json each event is one JSON object with the same keys.
Extra structured fields go in `extra={"fields": {...}}`; they appear before msg in text
and as keys in JSON. The trace ids come from the current OpenTelemetry span, so any
logger (ours, uvicorn's, grpc's) gets them.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from opentelemetry import trace

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


@dataclass(frozen=True)
class ServiceFields:
    id: str = ""
    name: str = ""
    version: str = ""


_service = ServiceFields()
_HANDLER_NAME = "micro"


def trace_ids() -> tuple[str, str]:
    """The current trace and span ids in W3C hex, or empty strings outside a span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return "", ""
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)


# The formatters run for every access log line; the parts that repeat from line to line
# (a file's short path, the current second) are worked out once and kept.


@functools.lru_cache(maxsize=256)
def _short_path(pathname: str) -> str:
    # The last folder and the file, like the Go example's "grpc/server.go:206".
    parts = pathname.replace("\\", "/").rsplit("/", 2)
    return "/".join(parts[-2:])


def _caller(record: logging.LogRecord) -> str:
    return f"{_short_path(record.pathname)}:{record.lineno}"


@functools.lru_cache(maxsize=4)
def _utc_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))


def _timestamp(record: logging.LogRecord) -> str:
    seconds = int(record.created)
    millis = int((record.created - seconds) * 1000)
    return f"{_utc_second(seconds)}.{millis:03d}Z"


def _fields(record: logging.LogRecord) -> Mapping[str, object]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, Mapping) else {}


# Quoted so that an event stays one line and a value with spaces reads as one token.
_NEEDS_QUOTES = re.compile(r'[ "=\n\r\t]')


def _text_value(value: object) -> str:
    text = str(value)
    if text == "" or _NEEDS_QUOTES.search(text):
        return json.dumps(text)
    return text


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = trace_ids()
        head = [
            f"{record.levelname} service.id={_service.id} service.name={_service.name}"
            f" service.version={_service.version} ts={_timestamp(record)}"
            f" caller={_caller(record)} trace_id={trace_id} span_id={span_id}"
        ]
        head.extend(f"{key}={_text_value(value)}" for key, value in _fields(record).items())
        if record.exc_info:
            head.append(f"error={_text_value(self.formatException(record.exc_info))}")
        message = record.getMessage().replace("\r", "\\r").replace("\n", "\\n")
        return " ".join(head) + f" msg={message}"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        trace_id, span_id = trace_ids()
        event: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "caller": _caller(record),
            "service.id": _service.id,
            "service.name": _service.name,
            "service.version": _service.version,
            "trace_id": trace_id,
            "span_id": span_id,
            "logger": record.name,
        }
        for key, value in _fields(record).items():
            event.setdefault(key, value)
        if record.exc_info:
            event["error"] = self.formatException(record.exc_info)
        event["msg"] = record.getMessage()
        return json.dumps(event, default=str, ensure_ascii=False)


def _formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f"log.format: unknown format {fmt!r} (use text or json)")


def configure_logging(
    *,
    service_id: str,
    service_name: str,
    service_version: str,
    level: str = "INFO",
    fmt: str = "text",
    stream: TextIO | None = None,
) -> logging.Logger:
    """Install the one root handler and answer the service's logger.

    Calling it again replaces the handler (so tests and reconfiguration do not stack
    handlers). Loggers of libraries keep propagating to the root.
    """
    global _service
    _service = ServiceFields(service_id, service_name, service_version)
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(_formatter(fmt))
    root.addHandler(handler)
    set_level(level)
    # grpc's cython layer logs every event loop lookup at DEBUG.
    logging.getLogger("grpc._cython.cygrpc").setLevel(logging.INFO)
    # uvicorn's own access log is replaced by the HTTP server's access log line.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    return logging.getLogger(service_name or "micro")


def set_level(level: str) -> None:
    """Change the level of every logger that does not set its own, at run time."""
    name = level.upper()
    if name not in LOG_LEVELS:
        raise ValueError(f"log.level: unknown level {level!r} (use one of {LOG_LEVELS})")
    logging.getLogger().setLevel(name)


def set_format(fmt: str) -> None:
    """Switch the installed handler between text and json at run time."""
    formatter = _formatter(fmt)
    for handler in logging.getLogger().handlers:
        if handler.get_name() == _HANDLER_NAME:
            handler.setFormatter(formatter)


class _LogSection(Protocol):
    @property
    def level(self) -> str: ...

    @property
    def format(self) -> str: ...


class _HasLog(Protocol):
    @property
    def log(self) -> _LogSection: ...


class _Subscribable(Protocol):
    def subscribe(
        self, select: Callable[[Any], Any], on_change: Callable[[Any], None]
    ) -> Callable[[], None]: ...


def follow_config(handle: _Subscribable) -> Callable[[], None]:
    """Apply log.level and log.format changes from a ConfigHandle; returns unsubscribe."""

    def apply(section: _LogSection) -> None:
        set_level(section.level)
        set_format(section.format)
        logging.getLogger(__name__).info(
            "log settings changed", extra={"fields": {"level": section.level}}
        )

    def select(config: _HasLog) -> _LogSection:
        return config.log

    return handle.subscribe(select, apply)
