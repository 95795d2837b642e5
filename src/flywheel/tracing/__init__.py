"""Tracing: spans on contextvars, written to the store and optionally exported over OTLP.

Importing this package stays light (no SQLAlchemy, no OpenTelemetry): the store and export parts load on first
use of `attach_store`, `list_traces`, `get_trace`, `attach_otlp`, `Redactor`.
"""

from __future__ import annotations

import importlib
from typing import Any

from flywheel.tracing.tracer import LiveSpan, in_context, remote_parent, trace, tracer

_LAZY = {
    "attach_store": "flywheel.tracing.store_sink",
    "list_traces": "flywheel.tracing.query",
    "get_trace": "flywheel.tracing.query",
    "attach_otlp": "flywheel.tracing.otel",
    "Redactor": "flywheel.tracing.redact",
}

__all__ = ["LiveSpan", "Redactor", "attach_otlp", "attach_store", "get_trace", "in_context", "list_traces",
           "remote_parent", "trace", "tracer"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flywheel.tracing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
