"""Spans on contextvars: correct across threads (each has its own context) and asyncio tasks (each copies it).

    with tracer.span("retrieve", kind="retrieval", inputs={"query": q}) as sp:
        hits = ...
        sp.set(outputs=[h.chunk.id for h in hits], **{"flywheel.k": 5})

Finished spans go to the registered sinks (the store's background writer, OTLP export); sinks must be fast
and must not raise — a tracing failure never fails the traced call.

Spans that end before the store is attached are not lost: once `tracer.expect_store()` was called (a Runtime
does it when it is built), finished spans are held in a bounded buffer (`EARLY_SPANS`, oldest dropped first and
counted) and handed to the first sink added with `replay=True` (the store's).

A root span started while another system's span is active — an OpenTelemetry span current in the caller's
context, or a W3C `traceparent` given to `remote_parent()` — is linked to it: the span and its descendants
carry `flywheel.otel.trace_id` (and the root `flywheel.otel.parent_id`), which the OTLP exporter uses as their
trace id and parent, so collectors show flywheel's spans inside the caller's trace. flywheel's own trace ids
(the store's keys, what `App.run` returns) stay unique per call.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import random
import re
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flywheel.types import Span, SpanKind

log = logging.getLogger("flywheel.tracing")
_SPAN_FIELDS = tuple(Span.model_fields)
_current: contextvars.ContextVar[LiveSpan | None] = contextvars.ContextVar("flywheel_span", default=None)
_remote: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("flywheel_remote", default=None)
EARLY_SPANS = 10_000  # finished spans held while waiting for the store (see Tracer.expect_store)
OTEL_TRACE = "flywheel.otel.trace_id"
OTEL_PARENT = "flywheel.otel.parent_id"
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def _new_id(nbytes: int) -> str:
    # ids need uniqueness, not secrecy: getrandbits saves a getrandom() system call per span on the hot path
    return f"{random.getrandbits(nbytes * 8):0{nbytes * 2}x}"


class LiveSpan:
    """A span being recorded. `set()` adds attributes or outputs; the record is built when it ends."""

    __slots__ = ("span_id", "trace_id", "parent_id", "name", "kind", "start_ns", "end_ns", "inputs",  # noqa: RUF023
                 "outputs", "has_output", "error", "attributes", "link")
    trace_id: str
    parent_id: str | None
    link: tuple[str, str] | None

    def __init__(self, name: str, kind: SpanKind, parent: LiveSpan | None, inputs: Any, attrs: dict):
        self.span_id = _new_id(8)
        self.name, self.kind, self.inputs, self.attributes = name, kind, inputs, attrs
        if parent is not None:
            self.trace_id, self.parent_id, self.link = parent.trace_id, parent.span_id, parent.link
        else:
            self.trace_id, self.parent_id = _new_id(16), None
            self.link = external_parent()  # (trace id, span id) of a caller's OpenTelemetry span, or None
            if self.link is not None:
                attrs[OTEL_PARENT] = self.link[1]
        if self.link is not None:
            attrs[OTEL_TRACE] = self.link[0]
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


def external_parent() -> tuple[str, str] | None:
    """(trace id, span id) of the span a new flywheel root should nest under: a `remote_parent()` in effect,
    else the caller's current OpenTelemetry span (looked up only when the application imported OpenTelemetry)."""
    remote = _remote.get()
    if remote is not None:
        return remote
    otel = sys.modules.get("opentelemetry.trace")
    if otel is None:
        return None
    try:
        ctx = otel.get_current_span().get_span_context()
    except Exception:  # noqa: BLE001 - a broken OpenTelemetry setup must not break tracing
        return None
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def parse_traceparent(header: str) -> tuple[str, str] | None:
    """(trace id, parent span id) of a W3C `traceparent` header, or None when it is not a valid one."""
    m = _TRACEPARENT.match(header.strip().lower()) if isinstance(header, str) else None
    if m is None or m.group(1) == "ff" or set(m.group(2)) == {"0"} or set(m.group(3)) == {"0"}:
        return None
    return m.group(2), m.group(3)


@contextmanager
def remote_parent(traceparent: str | None) -> Iterator[tuple[str, str] | None]:
    """Nest the flywheel traces started inside this block under a W3C `traceparent` (e.g. an incoming HTTP
    header) when exporting over OTLP. An absent or malformed header is ignored."""
    parent = parse_traceparent(traceparent) if traceparent else None
    token = _remote.set(parent) if parent else None
    try:
        yield parent
    finally:
        if token is not None:
            _remote.reset(token)


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
        self._early: deque[Span] | None = None  # spans waiting for the store (see expect_store)
        self._early_lock = threading.Lock()
        self.early_dropped = 0  # spans the early buffer had to drop (oldest first) since the last replay

    # -- configuration
    def add_sink(self, sink: Callable[[Span], None], flush: Callable[[], None] | None = None, *,
                 redacts: bool = False, replay: bool = False) -> int:
        """Register `sink(record)`. Sinks get redacted records, unless `redacts=True`: the sink promises to
        call `tracer.redact(record)` itself later, off the traced call's thread (the store and OTLP sinks
        do this so redaction costs the caller nothing). With `replay=True` the sink first receives the spans
        held since `expect_store()` (raw: such a sink must redact); returns how many it received."""
        early: list[Span] = []
        with self._early_lock:
            self._sinks.append(sink)
            if redacts:
                self._self_redacting.append(sink)
            if flush:
                self._flushers.append(flush)
            if replay and self._early is not None:  # after the sink is in: `end` sees one or the other
                early, self._early = list(self._early), None
        for record in early:
            try:
                sink(record)
            except Exception:
                log.exception("trace sink failed")
        return len(early)

    def expect_store(self) -> None:
        """Hold finished spans (at most EARLY_SPANS, dropping the oldest) until a sink is added with
        `replay=True`: spans that end before the store is open are then written too."""
        with self._early_lock:
            if self._early is None:
                self._early = deque(maxlen=EARLY_SPANS)

    def discard_early(self) -> int:
        """Stop holding spans for a store that will not come (e.g. a Runtime closed without opening it)."""
        with self._early_lock:
            held, self._early = self._early, None
        return len(held) if held else 0

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
        if not self.enabled:
            return
        if self._early is not None and self._hold(span):
            return
        if self._sinks:
            self._emit(span.to_record())

    def _hold(self, span: LiveSpan) -> bool:
        """Keep the record for the store to come (and give it to the sinks there are); False when the
        buffer was handed over meanwhile."""
        with self._early_lock:
            early = self._early
            if early is None:
                return False
            record = span.to_record()
            if len(early) == early.maxlen:
                self.early_dropped += 1
            early.append(record)
            sinks = list(self._sinks)  # not a replay sink added after this point: it gets the record by replay
        if sinks:
            self._emit(record, sinks)
        return True

    def ingest(self, record: Span) -> None:
        """Hand a finished span recorded elsewhere (e.g. received over OTLP) to the sinks, with the same
        redaction and writer as flywheel's own spans."""
        self._emit(record)

    def _emit(self, record: Span, sinks: list[Callable[[Span], None]] | None = None) -> None:
        sinks = self._sinks if sinks is None else sinks
        redacted: Span | None = record
        if self.redactor is not None and len(self._self_redacting) < len(sinks):
            redacted = self.redact(record)
        for sink in sinks:
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
