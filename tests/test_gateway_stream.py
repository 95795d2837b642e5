"""Streaming (sync and async) and async calls through the gateway, against the real fake LLM server."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.config import ModelAlias, Price
from flywheel.errors import GatewayError
from flywheel.gateway import Gateway, RetryPolicy, StreamBrokenError
from flywheel.testing.fake_llm import Fault
from flywheel.tracing import tracer
from flywheel.types import ChatRequest

ANSWER = "The capital of France is Paris, a city on the Seine."


@pytest.fixture
def gw(llm):
    gateway = Gateway({
        "primary": ModelAlias(model="primary-model", base_url=llm.base_url, timeout=2.0, max_retries=1,
                              fallbacks=["backup"], price=Price(input=1.0, output=3.0)),
        "backup": ModelAlias(model="backup-model", base_url=llm.base_url, timeout=2.0),
    }, retry=RetryPolicy(base_s=0.01, max_s=0.02))
    yield gateway
    gateway.close()


def request(**kw) -> ChatRequest:
    return ChatRequest.of("What is the capital of France?", model="primary", **kw)


def test_stream_yields_the_text_and_reports_usage(gw, llm, spans):
    stream = gw.stream(request())
    chunks = list(stream)
    assert len([c for c in chunks if c.delta]) > 3  # really streamed, not one blob
    assert "".join(c.delta for c in chunks) == ANSWER
    last = chunks[-1]
    assert last.finish_reason == "stop" and last.usage is not None and last.usage.output_tokens > 0
    result = stream.result
    assert result.text == ANSWER and result.usage == last.usage
    assert result.cost_usd == pytest.approx((last.usage.input_tokens + 3 * last.usage.output_tokens) / 1e6)
    assert llm.requests[-1]["stream_options"] == {"include_usage": True}
    top = next(s for s in spans if s.name == "gateway.chat")
    attempt = next(s for s in spans if s.kind == "llm" and s.parent_id == top.span_id)
    assert top.outputs == ANSWER and attempt.outputs == ANSWER
    assert attempt.attributes["gen_ai.usage.output_tokens"] == last.usage.output_tokens
    assert result.trace_id == top.trace_id


@pytest.mark.parametrize("fault", [Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.DROP, Fault.INVALID_JSON])
def test_stream_retries_before_the_first_chunk(gw, llm, fault):
    llm.fail(fault, times=1)
    stream = gw.stream(request())
    assert "".join(c.delta for c in stream) == ANSWER
    assert stream.result.attempts == 2


def test_stream_falls_back_before_the_first_chunk(gw, llm):
    llm.fail(Fault.SERVER_ERROR, times=None, model="primary-model")
    stream = gw.stream(request())
    assert "".join(c.delta for c in stream) == ANSWER
    assert stream.result.model == "backup-model" and stream.result.attempts == 3


def test_stream_that_breaks_midway_raises_and_is_recorded_when_resuming_is_off(gw, llm, spans):
    gw.resume_streams = False
    llm.fail(Fault.TRUNCATED_STREAM, times=1)
    got = []
    with pytest.raises(StreamBrokenError) as err:
        for chunk in gw.stream(request()):
            got.append(chunk.delta)
    partial = "".join(got)
    assert partial and ANSWER.startswith(partial) and partial != ANSWER
    assert err.value.partial_text == partial
    assert "broke after" in str(err.value) and "primary-model" in str(err.value)
    assert isinstance(err.value, GatewayError)
    assert len(llm.requests) == 1  # not retried: the caller already has part of the answer
    attempt = next(s for s in spans if s.name == "chat primary-model")
    top = next(s for s in spans if s.name == "gateway.chat")
    assert attempt.error and "stream" in attempt.error and attempt.outputs == partial
    assert top.error and "StreamBrokenError" in top.error


def test_a_stream_broken_midway_resumes_from_the_next_attempt(gw, llm, spans):
    llm.fail(Fault.TRUNCATED_STREAM, times=1)
    stream = gw.stream(request())
    deltas = [c.delta for c in stream]
    assert "".join(deltas) == ANSWER  # nothing repeated, nothing missing
    assert stream.result.text == ANSWER and stream.result.attempts == 2 and len(llm.requests) == 2
    first, second = sorted((s for s in spans if s.name == "chat primary-model"),
                           key=lambda s: s.attributes["flywheel.attempt"])
    assert first.error and "stream" in first.error and ANSWER.startswith(first.outputs)
    assert second.error is None and second.outputs == ANSWER
    assert first.attributes["flywheel.cost_usd"] == 0.0  # a failed attempt that reported no usage costs $0


def test_a_resumed_stream_that_departs_from_the_delivered_text_raises(gw, llm, spans):
    answers = iter(["The capital of France is Paris, a city on the Seine.", "Paris is the capital; it is big."])
    llm.reset()
    llm.add("capital", lambda body: next(answers))
    llm.fail(Fault.TRUNCATED_STREAM, times=1)
    got = []
    with pytest.raises(StreamBrokenError) as err:
        for chunk in gw.stream(request()):
            got.append(chunk.delta)
    partial = "".join(got)
    assert partial and err.value.partial_text == partial and partial.startswith("The capital")
    assert "departs" in str(err.value)
    diverged = [s for s in spans if s.name == "chat primary-model" and s.error and "departs" in s.error]
    assert len(diverged) == 1


@pytest.mark.parametrize("use_async", [False, True])
def test_no_streaming_call_fails_under_faults_with_a_healthy_fallback(llm, use_async):
    """20 % of the primary's streams fail, in every way fake_llm can fail them, including mid-text.

    The primary's timeout (1.5 s) is well under a hang (5 s) yet long enough that, on a loaded CI machine, most
    of 60 streams started at once on one event loop get connected: at 0.5 s many timed out while connecting, so
    their requests never reached the fake and the faults went untested."""
    llm.fault_rate(0.2, list(Fault), model="primary-model", seed=7, hang_seconds=5.0)
    gateway = Gateway({
        "primary": ModelAlias(model="primary-model", base_url=llm.base_url, timeout=1.5, max_retries=1,
                              fallbacks=["backup"]),
        "backup": ModelAlias(model="backup-model", base_url=llm.base_url, timeout=5.0),
    }, retry=RetryPolicy(base_s=0.001, max_s=0.002))
    n = 60

    async def one_async(i: int) -> str:
        return "".join([c.delta async for c in gateway.astream(request_for(i))])

    def one(i: int) -> str:
        return "".join(c.delta for c in gateway.stream(request_for(i)))

    try:
        if use_async:
            async def run() -> list:
                return await asyncio.gather(*[one_async(i) for i in range(n)], return_exceptions=True)
            outcomes = asyncio.run(run())
        else:
            outcomes = []
            for i in range(n):
                try:
                    outcomes.append(one(i))
                except Exception as exc:  # noqa: BLE001 - counted below
                    outcomes.append(exc)
    finally:
        gateway.close()
    failed = [o for o in outcomes if not isinstance(o, str)]
    assert not failed, f"{len(failed)} of {n} streaming calls failed: {failed[:3]}"
    assert all(o == ANSWER for o in outcomes)
    # the faults really happened: counted where they are made. Not len(llm.requests) - n: an attempt that timed
    # out before its request reached the fake is retried unseen, so that count moves with the machine's load
    injected = llm.injected
    assert injected and {i.model for i in injected} == {"primary-model"}


def request_for(i: int) -> ChatRequest:
    return ChatRequest.of(f"What is the capital of France? ({i})", model="primary")


def test_consumer_stopping_early_closes_the_spans(gw, llm, spans):
    stream = gw.stream(request())
    next(iter(stream))
    stream.close()
    top = next(s for s in spans if s.name == "gateway.chat")
    assert top.attributes["flywheel.stream.cancelled"] is True and top.error is None
    assert tracer.current() is None  # nothing leaked into the caller's context


def test_streaming_does_not_leak_the_span_into_the_consumer(gw, llm):
    with tracer.span("app", "app") as app:
        for _ in gw.stream(request()):
            assert tracer.current() is app


def test_async_stream_with_usage(gw, llm):
    async def run():
        stream = gw.astream(request())
        chunks = [c async for c in stream]
        return chunks, stream.result

    chunks, result = asyncio.run(run())
    assert "".join(c.delta for c in chunks) == ANSWER
    assert chunks[-1].usage is not None and result.usage == chunks[-1].usage


def test_async_stream_retry_midway_resume_and_break(gw, llm):
    async def run():
        llm.fail(Fault.RATE_LIMIT, times=1)
        ok = "".join([c.delta async for c in gw.astream(request())])
        llm.fail(Fault.TRUNCATED_STREAM, times=1)
        resumed = "".join([c.delta async for c in gw.astream(request())])
        gw.resume_streams = False
        llm.fail(Fault.TRUNCATED_STREAM, times=1)
        with pytest.raises(StreamBrokenError):
            async with gw.astream(request()) as stream:
                async for _ in stream:
                    pass
        return ok, resumed

    assert asyncio.run(run()) == (ANSWER, ANSWER)


def test_async_gather_50_calls(gw, llm, spans):
    async def run():
        with tracer.span("batch", "app") as outer:
            results = await asyncio.gather(*[
                gw.achat(ChatRequest.of(f"capital question {i}", model="primary")) for i in range(50)])
        return outer, results

    outer, results = asyncio.run(run())
    assert len(results) == 50 and all(r.text == ANSWER for r in results)
    tops = [s for s in spans if s.name == "gateway.chat"]
    assert len(tops) == 50 and all(t.parent_id == outer.span_id for t in tops)
    assert {r.trace_id for r in results} == {outer.trace_id}


def test_async_retry_fallback_and_new_event_loops(gw, llm):
    llm.fail(Fault.SERVER_ERROR, times=None, model="primary-model")
    for _ in range(2):  # a second asyncio.run must not reuse the first loop's connection pool
        result = asyncio.run(gw.achat(request()))
        assert result.model == "backup-model" and result.attempts == 3


def test_async_hang_times_out(gw, llm):
    llm.fail(Fault.HANG, times=1, seconds=5.0)
    result = asyncio.run(gw.achat(request(timeout=0.3)))
    assert result.attempts == 2 and result.text == ANSWER


def test_threads_share_one_provider_and_client(gw, llm):
    from concurrent.futures import ThreadPoolExecutor

    def call(i: int):
        result = gw.chat(ChatRequest.of(f"capital {i}?", model="primary"))
        return result.text, id(gw.provider("primary").client)

    with ThreadPoolExecutor(8) as pool:
        out = list(pool.map(call, range(40)))
    assert {text for text, _ in out} == {ANSWER}
    assert len({client for _, client in out}) == 1  # one SDK client per alias, reused by every call


def test_provider_setup_happens_before_the_first_attempt_starts(gw, llm, spans, monkeypatch):
    """The SDK import and client construction (seconds on a cold start) are not part of attempt 1."""
    prov = gw.provider("primary")
    prov._client = None
    seen: list[tuple[bool, int]] = []
    real = type(prov).prepare

    def prepare(self, stream: bool = False) -> None:
        real(self, stream)
        seen.append((stream, time.time_ns()))  # when the setup was over

    monkeypatch.setattr(type(prov), "prepare", prepare)
    assert "".join(c.delta for c in gw.stream(request())) == ANSWER
    assert [stream for stream, _ in seen] == [True]
    assert prov._client is not None  # the client was built there, not inside the attempt
    attempt = next(s for s in spans if s.name == "chat primary-model")
    assert attempt.start_ns >= seen[0][1]  # the attempt (its span, its timeout) began after the setup
    assert attempt.inputs["messages"][-1]["content"] == "What is the capital of France?"
    assert attempt.inputs["params"]["model"] == "primary-model"


def test_a_failed_attempt_records_cost_zero_not_unknown(gw, llm, spans):
    llm.fail(Fault.SERVER_ERROR, times=1)
    assert gw.chat(request()).attempts == 2
    failed = next(s for s in spans if s.name == "chat primary-model" and s.error)
    assert failed.attributes["flywheel.cost_usd"] == 0.0


def test_async_callers_do_the_provider_setup_off_the_event_loop(gw, llm, monkeypatch):
    prov = gw.provider("primary")
    prov._client = None
    threads: list[int] = []
    real = type(prov).prepare

    def prepare(self, stream: bool = False) -> None:
        threads.append(threading.get_ident())
        real(self, stream)

    monkeypatch.setattr(type(prov), "prepare", prepare)

    async def run() -> tuple[str, int]:
        text = "".join([c.delta async for c in gw.astream(request())])
        return text, threading.get_ident()

    text, loop_thread = asyncio.run(run())
    assert text == ANSWER
    assert threads and threads[0] != loop_thread  # a cold SDK import never blocks the event loop
