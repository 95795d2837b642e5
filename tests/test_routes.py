"""`routes:`: config validation, a route name served by its alias, sticky splits, shadow copies that never touch
the served answer and whose cost stays off the served trace."""
# ruff: noqa: F811 - the shared fixture imported from conftest is redefined as a parameter

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from pathlib import Path

import pytest
from conftest import server  # noqa: F401 - module-scoped fake LLM
from routes_support import write_project

from flywheel.config import RouteConfig
from flywheel.errors import ConfigError
from flywheel.gateway import Gateway
from flywheel.gateway.routes import Router, pick_arm, sticky_key
from flywheel.testing.fake_llm import Fault
from flywheel.tracing import tracer
from flywheel.types import ChatRequest


@pytest.fixture
def llm(server):
    server.reset()
    server.clear_faults()
    server.add(r".", "small says hi", model="fake-small")
    server.add(r".", "large says hi", model="fake-large")
    return server


@pytest.fixture
def spans():
    got: list = []
    tracer.add_sink(got.append)
    yield got
    tracer.remove_sink(got.append)


def test_a_route_name_is_served_by_its_alias_and_recorded_on_the_span(tmp_path: Path, llm, spans) -> None:
    project = write_project(tmp_path, llm, "support: {alias: small}\n",
                            extra="apps:\n  qa: {kind: chat, model: support}\n")
    assert project.config.apps["qa"].model == "support"
    with Gateway.from_config(project.config) as gw:
        result = gw.chat(ChatRequest.of("hello", model="support"))
        assert result.text == "small says hi" and result.alias == "small"
        assert gw.resolve("support").model == "fake-small" and gw.chain("support") == ("small",)
        streamed = "".join(c.delta for c in gw.stream(ChatRequest.of("hello", model="support")))
        assert streamed == "small says hi"
    route_span = next(s for s in spans if s.name == "route support")
    assert route_span.attributes["flywheel.route"] == "support"
    assert route_span.attributes["flywheel.route.arm"] == "small"
    assert route_span.attributes["flywheel.route.cost_usd"] == pytest.approx(result.cost_usd)
    children = [s for s in spans if s.trace_id == route_span.trace_id and s.name == "gateway.chat"]
    assert children and children[0].parent_id == route_span.span_id


@pytest.mark.parametrize(("routes", "needle", "line"), [
    ("support: {alias: smal}\n", "smal", 9),
    ("support:\n  split: {small: 90, large: 0}\n", "positive", 10),
    ("support:\n  split: {small: 100}\n", "at least two arms", 10),
    ("support: {alias: small, shadow: huge}\n", "huge", 9),
    ("support: {sticky: user}\n", "exactly one of", 9),
    ("support: {alias: small, sticky: device}\n", "sticky", 9),
    ("support: {alias: small, shadow: small}\n", "also the alias that serves it", 9),
])
def test_bad_routes_are_config_errors_with_file_and_line(tmp_path: Path, llm, routes: str, needle: str,
                                                         line: int) -> None:
    with pytest.raises(ConfigError) as err:
        write_project(tmp_path, llm, routes)
    text = str(err.value)
    assert needle in text and f"flywheel.yaml:{line}" in (err.value.where or ""), (text, err.value.where)


def test_a_route_named_like_an_alias_is_refused(tmp_path: Path, llm) -> None:
    with pytest.raises(ConfigError, match="name of a model alias"):
        write_project(tmp_path, llm, "small: {alias: large}\n")


def test_split_assignment_is_sticky_and_follows_the_weights() -> None:
    route = RouteConfig(split={"small": 90, "large": 10})
    arms = [pick_arm("support", route, f"user-{i}") for i in range(20000)]
    share = Counter(arms)["small"] / len(arms)
    assert 0.88 < share < 0.92
    assert all(pick_arm("support", route, f"user-{i}") == arms[i] for i in range(0, 20000, 97))
    other = [pick_arm("faq", route, f"user-{i}") for i in range(2000)]
    assert other != arms[:2000]  # each route draws its own buckets


def test_sticky_key_comes_from_user_or_session_metadata() -> None:
    req = ChatRequest.of("x", metadata={"user": "u1", "request": {"session_id": "s9"}})
    assert sticky_key(req, "user") == "u1" and sticky_key(req, "session") == "s9"
    assert sticky_key(req, "none") is None and sticky_key(ChatRequest.of("x"), "user") is None


def test_requests_of_one_user_always_get_the_same_arm(tmp_path: Path, llm, spans) -> None:
    project = write_project(tmp_path, llm, "ab: {split: {small: 50, large: 50}, sticky: user}\n")
    with Gateway.from_config(project.config) as gw:
        for user in ("ann", "bob", "cyd", "dan"):
            texts = {gw.chat(ChatRequest.of("hi", model="ab", metadata={"user": user})).text for _ in range(3)}
            expected = pick_arm("ab", project.config.routes["ab"], user)
            assert texts == {f"{expected} says hi"}


def _gate(llm) -> threading.Event:
    """The shadow model answers only once the returned event is set."""
    release = threading.Event()
    llm.reset()
    llm.add(r".", "small says hi", model="fake-small")
    llm.add(r".", lambda body: "large says hi" if release.wait(20) else "timeout", model="fake-large")
    return release


def test_a_hanging_shadow_never_delays_or_changes_the_served_answer(tmp_path: Path, llm, spans) -> None:
    project = write_project(tmp_path, llm, "support: {alias: small, shadow: large}\n")
    release = _gate(llm)
    with Gateway.from_config(project.config) as gw:
        with tracer.span("server /v1/chat/completions") as root:  # as in `flywheel serve`: an enclosing request
            result = gw.chat(ChatRequest.of("hello", model="support"))
            shadow = gw.router.futures[-1]
            assert result.text == "small says hi" and result.trace_id == root.trace_id
            assert not shadow.done()  # the served call returned while the shadow was still waiting
        release.set()
        shadow_result = shadow.result(timeout=20)
    assert shadow_result is not None and shadow_result.text == "large says hi"
    served = [s for s in spans if s.trace_id == result.trace_id]
    shadow_root = next(s for s in spans if s.name == "shadow support")
    assert shadow_root.trace_id != result.trace_id and shadow_root.parent_id is None
    assert shadow_root.attributes["flywheel.shadow_of"] == result.trace_id
    assert not any(s.attributes.get("flywheel.alias") == "large" for s in served)
    served_cost = sum(s.attributes.get("flywheel.cost_usd", 0.0) for s in served)
    assert served_cost == pytest.approx(result.cost_usd) and result.cost_usd > 0
    shadow_cost = sum(s.attributes.get("flywheel.cost_usd", 0.0) for s in spans if s.trace_id == shadow_root.trace_id)
    assert shadow_cost == pytest.approx(shadow_result.cost_usd) and shadow_cost > result.cost_usd


def test_a_failing_shadow_is_recorded_on_its_own_trace_only(tmp_path: Path, llm, spans) -> None:
    project = write_project(tmp_path, llm, "support: {alias: small, shadow: large}\n")
    llm.fail(Fault.SERVER_ERROR, times=None, model="fake-large")
    with Gateway.from_config(project.config) as gw:
        result = gw.chat(ChatRequest.of("hello", model="support"))
        assert gw.router.futures[-1].result(timeout=20) is None
    assert result.text == "small says hi"
    shadow_root = next(s for s in spans if s.name == "shadow support")
    assert shadow_root.error and shadow_root.attributes["flywheel.shadow_of"] == result.trace_id


def test_async_shadow_runs_as_a_task_after_the_answer(tmp_path: Path, llm, spans) -> None:
    project = write_project(tmp_path, llm, "support: {alias: small, shadow: large}\n")
    release = _gate(llm)

    async def scenario() -> tuple:
        gw = Gateway.from_config(project.config)
        with tracer.span("server /v1/chat/completions"):
            result = await gw.achat(ChatRequest.of("hello", model="support"))
            task = gw.router.futures[-1]
            pending = not task.done()
        release.set()
        shadow = await asyncio.wait_for(task, 20)
        await gw.aclose()
        gw.close()
        return result, pending, shadow

    result, pending, shadow = asyncio.run(scenario())
    assert result.text == "small says hi" and pending and shadow.text == "large says hi"
    shadow_root = next(s for s in spans if s.name == "shadow support")
    assert shadow_root.trace_id != result.trace_id and shadow_root.attributes["flywheel.shadow_of"] == result.trace_id


def test_shadow_copies_beyond_the_limit_are_skipped_not_queued(monkeypatch) -> None:
    from flywheel.gateway import routes

    monkeypatch.setattr(routes, "MAX_PENDING", 1)
    router = Router({"r": RouteConfig(alias="a", shadow="b")})
    assert router._shadow_request(ChatRequest.of("x", model="r")) is not None
    assert router._shadow_request(ChatRequest.of("x", model="r")) is None and router.shadow_skipped == 1


def test_an_app_whose_model_is_a_route_is_served_by_the_routed_alias(tmp_path: Path, llm) -> None:
    from flywheel.apps.runtime import Runtime

    project = write_project(tmp_path, llm, "support: {alias: large}\n",
                            extra="apps:\n  qa: {kind: chat, model: support}\ncache: {exact: false}\n")
    with Runtime(project, tracing=False) as rt:
        answer = rt.app("qa").run("hello")
    assert answer.text == "large says hi"
