"""Tracing: spans on contextvars, written to the store and optionally exported over OTLP."""

from flywheel.tracing.tracer import LiveSpan, in_context, trace, tracer

__all__ = ["LiveSpan", "in_context", "trace", "tracer"]
