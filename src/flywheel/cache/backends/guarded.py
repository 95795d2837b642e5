"""A backend wrapper that never raises: a failure is a miss (or a skipped write) plus a warning span.

While the circuit breaker is open the backend is not called at all, so a dead Redis or database costs
nothing per request until the next retry; each skipped call still leaves a `cache.error` span on the
request's trace, so the degradation is visible where it happens.
"""

from __future__ import annotations

import logging
from typing import Any

from flywheel.cache.backends.base import Backend, BackendDown, Breaker
from flywheel.tracing.tracer import tracer

log = logging.getLogger("flywheel.cache")


class GuardedBackend:
    def __init__(self, backend: Backend, breaker: Breaker | None = None):
        self.backend = backend
        self.breaker = breaker or Breaker()

    @property
    def name(self) -> str:
        return self.backend.name

    @property
    def degraded(self) -> bool:
        return self.breaker.open

    def call(self, op: str, default: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.breaker.allow():
            self._warn(op, f"{self.name} cache backend unavailable ({self.breaker.last_error}); not tried",
                       skipped=True)
            return default
        try:
            result = getattr(self.backend, op)(*args, **kwargs)
        except BackendDown as exc:
            delay = self.breaker.failure(str(exc))
            log.warning("cache backend %s is down (%s); caching off for %.0f s", self.name, exc, delay)
            self._warn(op, f"{self.name} cache backend down: {exc}", retry_in_s=delay)
            return default
        except Exception as exc:
            delay = self.breaker.failure(f"{type(exc).__name__}: {exc}")
            log.exception("cache backend %s failed in %s; caching off for %.0f s", self.name, op, delay)
            self._warn(op, f"{self.name} cache backend failed: {type(exc).__name__}: {exc}", retry_in_s=delay)
            return default
        self.breaker.success()
        return result

    def attempt(self, op: str, *args: Any, **kwargs: Any) -> bool:
        """Run a write; True when the backend took it."""
        marker = object()
        return self.call(op, marker, *args, **kwargs) is not marker

    def _warn(self, op: str, message: str, **attrs: Any) -> None:
        current = tracer.current()
        if current is not None:
            current.set(**{"flywheel.cache.error": message})
        extra = {f"flywheel.cache.{k}": v for k, v in attrs.items()}
        with tracer.span("cache.error", kind="cache", **{
            "flywheel.cache.error": message, "flywheel.cache.backend": self.name, "flywheel.cache.op": op,
            "flywheel.level": "warning", **extra,
        }) as sp:
            sp.set(outputs=message)  # what `traces show` prints under the span (not "(empty output)")
