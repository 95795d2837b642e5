"""Retries, Retry-After, timeouts, fallback and cost across attempts, against the real fake LLM server."""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import time
from email.utils import formatdate

import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.config import ModelAlias, Price
from flywheel.errors import GatewayError
from flywheel.gateway import Gateway, ProviderError, ProviderResponse, RetryPolicy
from flywheel.gateway.providers.base import BaseProvider, make_usage
from flywheel.gateway.retry import parse_retry_after
from flywheel.testing.fake_llm import Fault
from flywheel.types import ChatRequest

FAST = RetryPolicy(base_s=0.01, max_s=0.05)


def gateway(llm, retry: RetryPolicy = FAST, **primary) -> Gateway:
    primary.setdefault("timeout", 2.0)
    return Gateway({
        "primary": ModelAlias(model="primary-model", base_url=llm.base_url, price=Price(input=2.0, output=4.0),
                              **primary),
        "backup": ModelAlias(model="backup-model", base_url=llm.base_url, price=Price(input=1.0, output=1.0)),
    }, retry=retry)


def ask(gw: Gateway, alias: str = "primary", **kw):
    return gw.chat(ChatRequest.of("What is the capital of France?", model=alias, **kw))


@pytest.mark.parametrize("fault", [Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.HANG, Fault.DROP,
                                   Fault.TRUNCATED_STREAM, Fault.INVALID_JSON])
def test_each_fault_is_retried_then_succeeds(llm, fault):
    gw = gateway(llm, timeout=0.3, max_retries=2)
    llm.fail(fault, times=1, seconds=2.0)
    result = ask(gw)
    assert result.text == "Paris."
    assert result.attempts == 2
    assert result.model == "primary-model"
    assert [r["model"] for r in llm.requests] == ["primary-model", "primary-model"]


class Waits(list):
    """An injected sleep: records how long the gateway asked to wait between attempts, without waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_retry_after_is_honoured(llm):
    waits = Waits()
    gw = gateway(llm, retry=RetryPolicy(base_s=0.0, max_s=0.0))  # no backoff of our own: only Retry-After
    gw.sleep = waits
    llm.fail(Fault.RATE_LIMIT, times=1, retry_after=0.6)
    result = ask(gw)
    assert result.attempts == 2
    assert waits == [0.6]


def test_retry_after_is_capped(llm):
    waits = Waits()
    gw = gateway(llm, retry=RetryPolicy(base_s=0.0, max_s=0.0, retry_after_cap_s=0.1))
    gw.sleep = waits
    llm.fail(Fault.RATE_LIMIT, times=1, retry_after=30)
    assert ask(gw).attempts == 2
    assert waits == [0.1]


def test_backoff_waits_come_from_the_policy(llm):
    waits = Waits()
    gw = gateway(llm, retry=RetryPolicy(base_s=0.5, max_s=0.75), max_retries=3)
    gw.sleep = waits
    llm.fail(Fault.SERVER_ERROR, times=3)
    assert ask(gw).attempts == 4
    assert len(waits) == 3 and all(0 <= w <= c for w, c in zip(waits, [0.5, 0.75, 0.75], strict=True))


def test_retry_after_parsing():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    now = time.time()
    assert 9 <= parse_retry_after({"retry-after": formatdate(now + 10, usegmt=True)}, now=now) <= 10.5
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_backoff_is_exponential_with_full_jitter():
    policy = RetryPolicy(base_s=0.5, max_s=3.0)
    for n, ceiling in [(0, 0.5), (1, 1.0), (2, 2.0), (5, 3.0)]:
        delays = [policy.delay(n) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.7  # jitter spans the whole range, not a constant
    assert policy.delay(0, retry_after=1.25) == 1.25


def test_hang_times_out_at_the_request_timeout(llm):
    gw = gateway(llm, max_retries=0, fallbacks=["backup"])
    llm.fail(Fault.HANG, times=1, seconds=30.0)  # the server would answer after 30 s …
    with pytest.raises(GatewayError) as err:  # … but without a fallback the call gives up at the timeout
        gateway(llm, max_retries=0).chat(ChatRequest.of("What is the capital of France?", model="primary",
                                                        timeout=0.3))
    assert "timed out" in str(err.value)
    llm.fail(Fault.HANG, times=1, seconds=30.0)
    result = ask(gw, timeout=0.3)
    assert result.model == "backup-model"  # a request that waited out the hang would have been answered by primary
    assert result.attempts == 2


def test_falls_back_when_primary_keeps_failing(llm):
    gw = gateway(llm, max_retries=2, fallbacks=["backup"])
    llm.fail(Fault.SERVER_ERROR, times=None, model="primary-model")
    result = ask(gw)
    assert result.text == "Paris."
    assert result.model == "backup-model"
    assert result.alias == "primary"
    assert result.attempts == 4
    assert [r["model"] for r in llm.requests] == ["primary-model"] * 3 + ["backup-model"]


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(llm, status):
    gw = gateway(llm, max_retries=3, fallbacks=["backup"])
    llm.fail(Fault.SERVER_ERROR, times=1, status=status, model="primary-model")
    result = ask(gw)
    assert result.model == "backup-model"
    assert result.attempts == 2  # one failed primary attempt, no retry, then the fallback


def test_wrong_api_key_is_a_401_that_fails_fast(llm, monkeypatch):
    monkeypatch.setenv("FW_TEST_KEY", "sk-wrong")
    llm.api_key = "sk-right"
    try:
        gw = Gateway({"a": ModelAlias(model="m", base_url=llm.base_url, api_key_env="FW_TEST_KEY", max_retries=3)},
                     retry=FAST)
        with pytest.raises(GatewayError) as err:
            ask(gw, "a")
    finally:
        llm.api_key = None
    assert len(err.value.attempts) == 1
    assert err.value.attempts[0].status == 401
    assert "sk-wrong" not in str(err.value)


def test_gateway_error_lists_every_attempt(llm):
    gw = gateway(llm, max_retries=1, fallbacks=["backup"])
    llm.fail(Fault.RATE_LIMIT, times=1, model="primary-model")
    llm.fail(Fault.SERVER_ERROR, times=1, model="primary-model", status=503)
    llm.fail(Fault.SERVER_ERROR, times=1, model="backup-model", status=400)
    with pytest.raises(GatewayError) as err:
        ask(gw)
    attempts = err.value.attempts
    assert [(a.alias, a.model, a.status) for a in attempts] == [
        ("primary", "primary-model", 429), ("primary", "primary-model", 503), ("backup", "backup-model", 400)]
    message = str(err.value)
    assert "primary-model" in message and "backup-model" in message and "HTTP 429" in message
    assert "3 attempt(s)" in message


class Scripted(BaseProvider):
    """Fails with the given errors first (each may report usage), then answers."""

    name = "scripted"

    def __init__(self, alias, errors: list[ProviderError]):
        super().__init__(alias)
        self.errors = list(errors)

    def chat(self, alias, request, timeout):
        if self.errors:
            raise self.errors.pop(0)
        return ProviderResponse("ok", make_usage(100, 50), alias.model, "stop")


def test_tokens_and_cost_accumulate_across_failed_attempts():
    errors = [ProviderError("overloaded", kind="server", status=529, retryable=True, usage=make_usage(1000, 0)),
              ProviderError("rate limited", kind="rate_limit", status=429, retryable=True)]
    gw = Gateway({"a": ModelAlias(model="m", price=Price(input=2.0, output=10.0), max_retries=2)}, retry=FAST)
    gw.register_provider("openai_compat", lambda alias: Scripted(alias, errors))
    result = gw.chat(ChatRequest.of("hi", model="a"))
    assert result.attempts == 3
    # reported usage of the failed attempt counts; the 429 reported none and costs nothing
    assert (result.usage.input_tokens, result.usage.output_tokens) == (1100, 50)
    assert result.cost_usd == pytest.approx((1100 * 2.0 + 50 * 10.0) / 1e6)


def test_cost_sums_over_fallback_aliases_at_their_own_prices(llm):
    gw = gateway(llm, max_retries=0, fallbacks=["backup"])
    llm.fail(Fault.SERVER_ERROR, times=1, model="primary-model")
    result = ask(gw)
    usage = result.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert result.cost_usd == pytest.approx((usage.input_tokens * 1.0 + usage.output_tokens * 1.0) / 1e6)


def test_provider_bug_fails_the_alias_not_the_process():
    class Broken(BaseProvider):
        def chat(self, alias, request, timeout):
            raise KeyError("oops")

    gw = Gateway({"a": ModelAlias(model="m", max_retries=3)}, retry=FAST)
    gw.register_provider("openai_compat", Broken)
    with pytest.raises(GatewayError, match="KeyError"):
        gw.chat(ChatRequest.of("hi", model="a"))
