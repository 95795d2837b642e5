"""`flywheel bench gateway`: what the gateway adds on top of the plain openai SDK, next to LiteLLM.

Overhead run: fake_llm in-process at 0 ms latency; after warm-up, `--calls` non-streaming calls
through each of (a) the plain `openai.OpenAI` client, (b) our Gateway with tracing on (spans
queued to a real SQLite Store in a temp folder via `flywheel.tracing.attach_store`) and (c)
`litellm.completion` (`openai/<model>` + api_base; offline cost map). The three are interleaved
call by call, rotating which goes first, so machine noise hits them alike.

Method: overhead_pX = pX(gateway latencies) − pX(direct latencies), i.e. percentiles of each
distribution subtracted (likewise for LiteLLM). Per-call paired differences are not used for p99:
the tail of a difference of two noisy samples mostly measures the noise of the other sample.

Own cost: `gateway_own_p50_ms` / `gateway_own_p99_ms` time the same Gateway (tracing to the store
included) over a provider that answers instantly without any I/O: what the gateway itself costs per
call, independent of which HTTP path the provider takes. (For an alias with an explicit base_url the
openai_compat provider sends non-streaming calls over its own pooled keep-alive connections and decodes
five fields itself, instead of the SDK's httpx client and pydantic `ChatCompletion`; that is why the
end-to-end overhead comes out below zero. `gateway_own_*` is the like-for-like figure.)

Fault run: `--fault-calls` calls through a Gateway whose `primary` alias gets 20 % injected
faults (429 with Retry-After 0.05 s, 500, and hangs cut by a 0.2 s per-attempt timeout; 2 retries,
backoff base 0.05 s) and a healthy `fallback` alias; reports failed calls (must be 0) and latency.
"""

from __future__ import annotations

import contextlib
import gc
import os
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import click

from flywheel.config import ModelAlias, Price, TracingConfig
from flywheel.errors import GatewayError
from flywheel.gateway import BaseProvider, Gateway, ProviderResponse, RetryPolicy
from flywheel.gateway.providers.base import make_usage
from flywheel.testing.fake_llm import FakeLLM, Fault
from flywheel.tracing import tracer
from flywheel.types import ChatRequest

MODEL = "fake-model"
PROMPT = "What does the gateway add on top of the SDK?"


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100)."""
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


@contextlib.contextmanager
def traced_store() -> Iterator[str]:
    """Tracing into a real Store in a temp folder; an in-memory sink when the store layer is unavailable."""
    with tempfile.TemporaryDirectory(prefix="flywheel-bench-") as tmp:
        try:
            from flywheel.store import Store
            from flywheel.tracing import attach_store
        except ImportError:
            sink: deque = deque(maxlen=100_000)
            tracer.add_sink(sink.append)
            try:
                yield "memory"
            finally:
                tracer.remove_sink(sink.append)
            return
        store = Store.open(f"sqlite:///{tmp}/bench.db")
        detach = attach_store(store, TracingConfig())
        try:
            yield "sqlite"
        finally:
            tracer.flush()
            detach()
            store.close()


def _litellm() -> Callable[..., Any] | None:
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    try:
        import litellm
    except ImportError:
        return None
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm.completion


class _Instant(BaseProvider):
    """Answers at once, no I/O: isolates the gateway's own per-call work."""

    def chat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        return ProviderResponse("instant", make_usage(12, 8), alias.model, "stop")


def own_cost(calls: int) -> list[float]:
    gw = Gateway({"instant": ModelAlias(provider="anthropic", model="instant", price=Price(input=1.0, output=2.0))})
    gw.register_provider("anthropic", _Instant)  # type: ignore[arg-type]  # the class is the factory
    for _ in range(200):
        gw.chat(ChatRequest.of(PROMPT, model="instant"))
    clock, out = time.perf_counter_ns, []
    for _ in range(calls):
        t0 = clock()
        gw.chat(ChatRequest.of(PROMPT, model="instant"))
        out.append((clock() - t0) / 1e6)
    return out


def overhead_run(calls: int, warmup: int) -> dict[str, Any]:
    import openai

    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    with FakeLLM(latency=0.0) as llm, traced_store() as sink_kind:
        llm.add("gateway", "It adds retries, fallback, cost and traces.")
        client = openai.OpenAI(base_url=llm.base_url, api_key="sk-bench", max_retries=0)
        gw = Gateway({"bench": ModelAlias(model=MODEL, base_url=llm.base_url, price=Price(input=1.0, output=2.0))})
        completion = _litellm()

        def direct() -> None:
            client.chat.completions.create(model=MODEL, messages=messages)

        def gateway() -> None:
            gw.chat(ChatRequest.of(PROMPT, model="bench"))

        def peer() -> None:
            completion(model=f"openai/{MODEL}", messages=messages,  # type: ignore[misc]  # only when installed
                       api_base=llm.base_url, api_key="sk-bench")

        runners: dict[str, Callable[[], None]] = {"direct": direct, "gateway": gateway}
        if completion is not None:
            runners["litellm"] = peer
        names = list(runners)
        for _ in range(warmup):
            for name in names:
                runners[name]()
        gc.collect()
        times: dict[str, list[float]] = {name: [] for name in names}
        clock = time.perf_counter_ns
        for i in range(calls):
            k = i % len(names)
            for name in names[k:] + names[:k]:
                fn = runners[name]
                t0 = clock()
                fn()
                times[name].append((clock() - t0) / 1e6)
        own = own_cost(calls)
        gw.close()
        client.close()

    d, g = times["direct"], times["gateway"]
    out: dict[str, Any] = {
        "calls": calls,
        "direct_p50_ms": round(percentile(d, 50), 3),
        "direct_p99_ms": round(percentile(d, 99), 3),
        "gateway_p50_ms": round(percentile(g, 50), 3),
        "gateway_p99_ms": round(percentile(g, 99), 3),
        "overhead_p50_ms": round(percentile(g, 50) - percentile(d, 50), 3),
        "overhead_p99_ms": round(percentile(g, 99) - percentile(d, 99), 3),
        "overhead_median_paired_ms": round(statistics.median(x - y for x, y in zip(g, d, strict=True)), 3),
        "gateway_own_p50_ms": round(percentile(own, 50), 4),
        "gateway_own_p99_ms": round(percentile(own, 99), 4),
        "trace_sink": sink_kind,
    }
    if "litellm" in times:
        lt = times["litellm"]
        out["litellm_p50_ms"] = round(percentile(lt, 50), 3)
        out["litellm_overhead_p50_ms"] = round(percentile(lt, 50) - percentile(d, 50), 3)
        out["litellm_overhead_p99_ms"] = round(percentile(lt, 99) - percentile(d, 99), 3)
    else:
        from flywheel.bench import missing_peer

        out["litellm"] = missing_peer("litellm", "pip install litellm")
        for key in ("litellm_p50_ms", "litellm_overhead_p50_ms", "litellm_overhead_p99_ms"):
            out[key], out[f"{key}_reason"] = None, "litellm is not installed (pip install litellm)"
    return out


FAULT_FIELDS = ("fault_failed_calls", "fault_retried_calls", "fault_fallback_calls", "fault_p50_ms", "fault_p99_ms")


def fault_run(calls: int, rate: float = 0.2, timeout_s: float = 0.2) -> dict[str, Any]:
    latencies: list[float] = []
    failed = retried = fell_back = 0
    with FakeLLM(latency=0.0) as llm, traced_store():
        llm.fault_rate(rate, [Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.HANG], seed=7, model="primary",
                       hang_seconds=1.0, retry_after=0.05)
        gw = Gateway({
            "primary": ModelAlias(model="primary", base_url=llm.base_url, timeout=timeout_s, max_retries=2,
                                  fallbacks=["fallback"]),
            "fallback": ModelAlias(model="fallback", base_url=llm.base_url, timeout=5.0),
        }, retry=RetryPolicy(base_s=0.05, max_s=1.0))
        gw.chat(ChatRequest.of("warm up", model="fallback"))
        for _ in range(calls):
            t0 = time.perf_counter()
            try:
                result = gw.chat(ChatRequest.of(PROMPT, model="primary"))
            except GatewayError:
                failed += 1
            else:
                retried += result.attempts > 1
                fell_back += result.model == "fallback"
            latencies.append((time.perf_counter() - t0) * 1000.0)
        gw.close()
    return {
        "fault_calls": calls,
        "fault_rate": rate,
        "fault_failed_calls": failed,
        "fault_retried_calls": retried,
        "fault_fallback_calls": fell_back,
        "fault_p50_ms": round(percentile(latencies, 50), 3),
        "fault_p99_ms": round(percentile(latencies, 99), 3),
    }


@click.command()
@click.option("--calls", default=2000, show_default=True, help="Calls per client in the overhead run.")
@click.option("--warmup", default=100, show_default=True, help="Unmeasured calls per client first.")
@click.option("--fault-calls", default=1000, show_default=True, help="Calls in the fault run (0 skips it).")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON result.")
def command(calls: int, warmup: int, fault_calls: int, as_json: bool) -> None:
    """Gateway overhead over the plain openai SDK (and LiteLLM's), then 20 % faults with a fallback."""
    from flywheel.cli import emit_json

    if not as_json:
        click.echo(f"overhead run: {calls} calls × 3 clients, interleaved …", err=True)
    result = overhead_run(calls, warmup)
    if fault_calls > 0:
        if not as_json:
            click.echo(f"fault run: {fault_calls} calls with 20 % faults on the primary …", err=True)
        result.update(fault_run(fault_calls))
    else:
        result.update({"fault_calls": 0, "fault_rate": None})
        for key in FAULT_FIELDS:
            result[key], result[f"{key}_reason"] = None, "--fault-calls 0"
    emit_json(result)
    if not as_json:
        p50, p99 = result["overhead_p50_ms"], result["overhead_p99_ms"]
        click.echo(f"gateway overhead: p50 {p50} ms, p99 {p99} ms (target ≤ 0.5 / ≤ 2 ms)", err=True)
    sys.stdout.flush()
