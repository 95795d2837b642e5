"""Prometheus metrics of one server process (`GET /metrics`). Each app object gets its own registry, so
several servers in one process (tests) never share counters."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter("flywheel_requests", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram("flywheel_request_seconds", "HTTP request latency", ["route"], registry=r,
                                 buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.tokens = Counter("flywheel_tokens", "model tokens", ["model", "app", "tenant", "direction"], registry=r)
        self.cost = Counter("flywheel_cost_usd", "model cost in USD", ["model", "app", "tenant"], registry=r)
        self.cache = Counter("flywheel_cache_lookups", "app cache lookups", ["app", "status"], registry=r)
        self.guards = Counter("flywheel_guard_actions", "guard actions taken", ["app", "check", "action"], registry=r)
        self.upstream_errors = Counter("flywheel_upstream_errors", "upstream failures after retries and fallbacks",
                                       ["model", "status"], registry=r)

    def usage(self, model: str, app: str, tenant: str, input_tokens: int, output_tokens: int, cost: float) -> None:
        self.tokens.labels(model, app, tenant, "input").inc(input_tokens)
        self.tokens.labels(model, app, tenant, "output").inc(output_tokens)
        self.cost.labels(model, app, tenant).inc(max(0.0, cost))

    def answer(self, answer: Any, tenant: str) -> None:
        app = answer.app or ""
        self.usage(",".join(answer.models) or "", app, tenant, answer.usage.input_tokens,
                   answer.usage.output_tokens, answer.cost_usd)
        self.cache.labels(app, answer.cache).inc()
        for action in answer.guard_actions:
            if action.action != "pass":
                self.guards.labels(app, action.check, action.action).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
