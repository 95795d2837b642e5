"""Spans on contextvars: correct across threads (each has its own context) and asyncio tasks (each copies it).

    with tracer.span("retrieve", kind="retrieval", inputs={"query": q}) as sp:
        hits = ...
        sp.set(outputs=[h.chunk.id for h in hits], **{"flywheel.k": 5})

Finished spans go to the registered sinks (the store's background writer, OTLP export); sinks must be fast
and must not raise — a tracing failure never fails the traced call.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flywheel.types import Span, SpanKind

log = logging.getLogger("flywheel.tracing")
_SPAN_FIELDS = tuple(Span.model_fields)
_current: contextvars.ContextVar[LiveSpan | None] = contextvars.ContextVar("flywheel_span", default=None)


def _new_id(nbytes: int) -> str:
    return os.urandom(nbytes).hex()


class LiveSpan:
    """A span being recorded. `set()` adds attributes or outputs; the record is built when it ends."""

    __slots__ = ("span_id", "trace_id", "parent_id", "name", "kind", "start_ns", "end_ns", "inputs",  # noqa: RUF023
                 "outputs", "has_output", "error", "attributes")

    def __init__(self, name: str, kind: SpanKind, parent: LiveSpan | None, inputs: Any, attrs: dict):
        self.span_id = _new_id(8)
        self.trace_id = parent.trace_id if parent else _new_id(16)
        self.parent_id = parent.span_id if parent else None
        self.name, self.kind, self.inputs, self.attributes = name, kind, inputs, attrs
        self.outputs: Any = None
        self.has_output = False
        self.error: str | None = None
        self.start_ns = time.time_ns()
        self.end_ns: int | None = None

    def set(self, outputs: Any = ..., **attributes: Any) -> LiveSpan:
        if outputs is not ...:
            self.outputs, self.has_output = outputs, True
        if attributes:
            self.attributes.update(attributes)
        return self

    def add(self, key: str, amount: float) -> None:
        """Accumulate a numeric attribute (tokens, cost) across attempts."""
        self.attributes[key] = self.attributes.get(key, 0) + amount

    def record_error(self, exc: BaseException | str) -> None:
        self.error = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"

    def to_record(self) -> Span:
        if not self.has_output:
            state = "missing"
        elif self.outputs is None or self.outputs == "" or self.outputs == [] or self.outputs == {}:
            state = "empty"
        else:
            state = "ok"
        return make_span(
            span_id=self.span_id, trace_id=self.trace_id, parent_id=self.parent_id, name=self.name,
            kind=self.kind, start_ns=self.start_ns, end_ns=self.end_ns, inputs=self.inputs,
            outputs=self.outputs, output_state=state, error=self.error, attributes=self.attributes,
        )


def make_span(**fields: Any) -> Span:
    """Build a Span record without validation (all fields given, trusted): ~3x cheaper than model_construct,
    which matters on the traced call's thread."""
    rec = object.__new__(Span)
    object.__setattr__(rec, "__dict__", fields)
    object.__setattr__(rec, "__pydantic_fields_set__", set(_SPAN_FIELDS))
    object.__setattr__(rec, "__pydantic_extra__", None)
    object.__setattr__(rec, "__pydantic_private__", None)
    return rec


class Tracer:
    def __init__(self) -> None:
        self.enabled = True
        self._sinks: list[Callable[[Span], None]] = []
        self._self_redacting: list[Callable[[Span], None]] = []
        self._flushers: list[Callable[[], None]] = []
        self.redactor: Callable[[Span], Span] | None = None

    # -- configuration
    def add_sink(self, sink: Callable[[Span], None], flush: Callable[[], None] | None = None, *,
                 redacts: bool = False) -> None:
        """Register `sink(record)`. Sinks get redacted records, unless `redacts=True`: the sink promises to
        call `tracer.redact(record)` itself later, off the traced call's thread (the store and OTLP sinks
        do this so redaction costs the caller nothing)."""
        self._sinks.append(sink)
        if redacts:
            self._self_redacting.append(sink)
        if flush:
            self._flushers.append(flush)

    def remove_sink(self, sink: Callable[[Span], None], flush: Callable[[], None] | None = None) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)
        if sink in self._self_redacting:
            self._self_redacting.remove(sink)
        if flush in self._flushers:
            self._flushers.remove(flush)

    def redact(self, record: Span) -> Span | None:
        """The record with secrets scrubbed by `redactor` (unchanged when none); None when redaction failed,
        in which case the span must be dropped rather than stored unredacted."""
        if self.redactor is None:
            return record
        try:
            return self.redactor(record)
        except Exception:
            log.exception("span redaction failed; span dropped rather than stored unredacted")
            return None

    def flush(self) -> None:
        for f in list(self._flushers):
            try:
                f()
            except Exception:  # flushing must never raise into user code
                log.exception("trace flush failed")

    # -- recording
    def current(self) -> LiveSpan | None:
        return _current.get()

    def current_trace_id(self) -> str | None:
        sp = _current.get()
        return sp.trace_id if sp else None

    def start(self, name: str, kind: SpanKind = "other", inputs: Any = None, **attrs: Any) -> tuple[LiveSpan, Any]:
        span = LiveSpan(name, kind, _current.get(), inputs, attrs)
        return span, _current.set(span)

    def end(self, span: LiveSpan, token: Any) -> None:
        span.end_ns = time.time_ns()
        try:
            _current.reset(token)
        except ValueError:  # ended in another context (e.g. a generator closed elsewhere)
            pass
        if self.enabled and self._sinks:
            self._emit(span.to_record())

    def _emit(self, record: Span) -> None:
        redacted: Span | None = record
        if self.redactor is not None and len(self._self_redacting) < len(self._sinks):
            redacted = self.redact(record)
        for sink in self._sinks:
            if sink in self._self_redacting:
                arg: Span | None = record
            else:
                arg = redacted
            if arg is None:
                continue
            try:
                sink(arg)
            except Exception:
                log.exception("trace sink failed")

    @contextmanager
    def span(self, name: str, kind: SpanKind = "other", inputs: Any = None, **attrs: Any) -> Iterator[LiveSpan]:
        span, token = self.start(name, kind, inputs, **attrs)
        try:
            yield span
        except BaseException as exc:
            span.record_error(exc)
            raise
        finally:
            self.end(span, token)


tracer = Tracer()


def trace(name: str | None = None, kind: SpanKind = "other", capture: bool = True) -> Callable:
    """Decorator: a span around each call, inputs are the arguments and outputs the return value."""

    def deco(fn: Callable) -> Callable:
        span_name = name or fn.__qualname__

        def _inputs(args: tuple, kwargs: dict) -> Any:
            if not capture:
                return None
            return {"args": list(args), "kwargs": kwargs} if kwargs else list(args)

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with tracer.span(span_name, kind, _inputs(args, kwargs)) as sp:
                    result = await fn(*args, **kwargs)
                    sp.set(outputs=result if capture else None)
                    return result

            return awrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with tracer.span(span_name, kind, _inputs(args, kwargs)) as sp:
                result = fn(*args, **kwargs)
                sp.set(outputs=result if capture else None)
                return result

        return wrapper

    return deco


def in_context(fn: Callable) -> Callable:
    """Bind `fn` to the caller's context, so spans it opens in a worker thread nest under the caller's span."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        return ctx.copy().run(fn, *args, **kwargs)

    return run
