"""Query-level router (`flywheel route train-router` + `routes.<name>.router`): a fake LLM whose small model
answers lookups and one-step sums but gets multi-step arithmetic wrong, and whose strong model answers nearly
everything; the trained router keeps the strong model's quality on held-out cases while sending a real share
to small, and the gateway serves easy queries with small and hard ones with strong, recording the choice."""
# ruff: noqa: F811 - the shared fixture imported from conftest is redefined as a parameter

from __future__ import annotations

import asyncio
import json
import re
import zlib
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import server  # noqa: F401 - module-scoped fake LLM
from routes_support import write_project

from flywheel.cli import main
from flywheel.config import Project
from flywheel.errors import ConfigError, UserError
from flywheel.gateway import Gateway
from flywheel.testing.fake_llm import FakeLLM
from flywheel.tracing import tracer
from flywheel.types import ChatRequest

CAPITALS = {
    "France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin", "Portugal": "Lisbon",
    "Austria": "Vienna", "Poland": "Warsaw", "Greece": "Athens", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Ireland": "Dublin", "Hungary": "Budapest",
    "Egypt": "Cairo", "Japan": "Tokyo", "Kenya": "Nairobi", "Peru": "Lima", "Chile": "Santiago",
    "Canada": "Ottawa", "Cuba": "Havana", "Turkey": "Ankara", "Iran": "Tehran", "Iraq": "Baghdad",
    "Nepal": "Kathmandu", "Ghana": "Accra", "Senegal": "Dakar", "Mali": "Bamako", "Russia": "Moscow",
    "China": "Beijing", "India": "New Delhi", "Thailand": "Bangkok", "Vietnam": "Hanoi",
    "Argentina": "Buenos Aires", "Colombia": "Bogota", "Morocco": "Rabat",
}
SYMBOLS = {
    "gold": "Au", "silver": "Ag", "iron": "Fe", "copper": "Cu", "sodium": "Na", "potassium": "K", "lead": "Pb",
    "tin": "Sn", "mercury": "Hg", "helium": "He", "neon": "Ne", "carbon": "C", "oxygen": "O", "zinc": "Zn",
}
HARD_TEMPLATES = (
    "Compute (({a} + {b}) * {c}) - {d}, step by step.",
    "A shop sells {a} apples, then {b} more; the total is multiplied by {c} and {d} are returned. How many?",
    "First add {a} and {b}, then multiply the sum by {c}, and finally subtract {d}. What is the result?",
)


def make_cases() -> list[dict]:
    cases = []
    for country, city in CAPITALS.items():
        cases.append({"id": f"capital-{country.lower()}", "q": f"What is the capital of {country}?", "a": city})
    for element, symbol in SYMBOLS.items():
        cases.append({"id": f"symbol-{element}", "q": f"What is the chemical symbol of {element}?",
                      "a": f"symbol {symbol}."})
    for i in range(24):
        a, b = 11 + 3 * i, 7 + 5 * i
        cases.append({"id": f"sum-{i}", "q": f"What is {a} + {b}?", "a": f"Answer: {a + b}."})
    for i in range(54):
        a, b, c, d = 5 + i, 9 + 2 * i, 2 + i % 4, 3 + i % 7
        template = HARD_TEMPLATES[i % len(HARD_TEMPLATES)]
        cases.append({"id": f"multi-{i}", "q": template.format(a=a, b=b, c=c, d=d),
                      "a": f"Answer: {(a + b) * c - d}."})
    return cases


def _noise(text: str, salt: str, per_mille: int) -> bool:
    return zlib.crc32(f"{salt}:{text}".encode()) % 1000 < per_mille


CASES = {c["q"]: c for c in make_cases()}
UNSEEN_CAPITALS = {"Belgium": "Brussels", "Latvia": "Riga", "Estonia": "Tallinn"}


def answer(text: str, *, strong: bool) -> str:
    """The scripted models: lookups and one-step sums right; multi-step arithmetic right only for the strong one.
    A little deterministic noise on both, so the outcomes are not a clean function of the query class."""
    case = CASES.get(text.strip())
    if case is None:  # a query outside the suite (the gateway tests)
        m = re.search(r"capital of (\w+)", text)
        return f"The capital is {UNSEEN_CAPITALS[m.group(1)]}." if m else f"the {'strong' if strong else 'small'} answer"
    kind = case["id"].split("-")[0]
    if kind == "multi":
        wrong = _noise(text, "strong", 40) if strong else not _noise(text, "small", 80)
    else:
        wrong = kind == "capital" and not strong and _noise(text, "small", 60)
    return "I think it is 12." if wrong else f"The answer: {case['a']}"


def suite_yaml(cases: list[dict]) -> str:
    return yaml.safe_dump({
        "name": "mixed", "target": "model:small", "prompt": "{{question}}", "threshold": 0.5,
        "cases": [{"id": c["id"], "vars": {"question": c["q"]}, "checks": [{"contains": c["a"]}]} for c in cases],
    }, sort_keys=False, allow_unicode=True)


def script(llm: FakeLLM) -> None:
    llm.reset()
    llm.clear_faults()
    llm.add(r".", lambda body: answer(_last_user(body), strong=False), model="fake-small")
    llm.add(r".", lambda body: answer(_last_user(body), strong=True), model="fake-large")


def _last_user(body: dict) -> str:
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")


def run(root: Path, *args: str):
    return CliRunner().invoke(main, ["--project", str(root), *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(server, tmp_path_factory):
    """One project, suite and trained router shared by the module (training runs 2 × 128 cases)."""
    root = tmp_path_factory.mktemp("router")
    script(server)
    write_project(root, server)
    cases = make_cases()
    (root / "evals").mkdir()
    (root / "evals" / "mixed.yaml").write_text(suite_yaml(cases), encoding="utf-8")
    result = run(root, "route", "train-router", "ask", "--small", "small", "--strong", "large",
                 "--suite", "evals/mixed.yaml", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    print("held-out:", json.dumps({k: v for k, v in data["heldout"].items() if k != "classifier"}))
    return root, data, cases


def test_the_scripted_models_have_the_intended_quality() -> None:
    cases = make_cases()
    small = sum(c["a"] in answer(c["q"], strong=False) for c in cases) / len(cases)
    strong = sum(c["a"] in answer(c["q"], strong=True) for c in cases) / len(cases)
    hard = [c for c in cases if c["id"].startswith("multi-")]
    assert strong > 0.9 and 0.4 < small < 0.7
    assert sum(c["a"] in answer(c["q"], strong=False) for c in hard) / len(hard) < 0.2


def test_the_trained_router_keeps_strong_quality_and_sends_a_real_share_to_small(server, trained) -> None:
    _, data, cases = trained
    held = data["heldout"]
    assert data["cases"]["total"] == len(cases) and data["cases"]["train"] + data["cases"]["heldout"] == len(cases)
    assert held["n"] == data["cases"]["heldout"] >= 30
    assert held["quality_kept"] >= 0.9, held
    assert held["small_share"] >= 0.3, held  # a real share goes to the cheap model
    assert held["cost_saved"] > 0.2, held
    assert held["quality_kept"] > held["quality_kept_random_same_share"], held  # better than routing blindly
    assert held["pass_rate"]["small"] < held["pass_rate"]["routed"] <= 1.0
    assert 0.0 <= data["threshold"] <= 1.0 and len(data["runs"]) == 2
    folder = Path(data["path"])
    meta = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "query-router" and meta["small"] == "small" and meta["strong"] == "large"
    assert meta["threshold"] == data["threshold"] and (folder / "weights.npz").is_file()
    config = yaml.safe_load(data["routes_yaml"])
    assert config["routes"]["ask"]["router"] == {"model": "routers/ask", "small": "small",
                                                 "strong": "large", "threshold": data["threshold"]}


def test_the_split_never_puts_an_input_on_both_sides() -> None:
    from flywheel.loop.query_router import Outcome, train_router

    cases = make_cases()
    outcomes = [Outcome(c["id"], c["q"], float(c["a"] in answer(c["q"], strong=False)),
                        float(c["a"] in answer(c["q"], strong=True)), 1.0, 10.0) for c in cases]
    outcomes += [Outcome(f"{o.case_id}-dup", o.input.upper() + "!", o.small, o.strong, 1.0, 10.0)
                 for o in outcomes[:20]]  # the same inputs again, spelled differently
    fit = train_router(outcomes, target_quality=0.95)
    from flywheel.loop.labelled import norm_input

    train = {norm_input(o.input) for o in outcomes if o.case_id in set(fit.train_ids)}
    held = {norm_input(o.input) for o in outcomes if o.case_id not in set(fit.train_ids)}
    assert train and held and not train & held
    assert fit.report["heldout"]["quality_kept"] >= 0.9


def test_stored_runs_give_the_same_router(trained) -> None:
    root, data, _ = trained
    result = run(root, "route", "train-router", "ask2", "--small", "small", "--strong", "large", "--suite", "mixed",
                 "--runs", ",".join(r[:8] for r in data["runs"]), "--json")
    assert result.exit_code == 0, result.output
    again = json.loads(result.stdout)
    assert again["runs"] == data["runs"] and again["threshold"] == data["threshold"]
    assert again["heldout"] == data["heldout"]
    assert (root / "routers" / "ask2" / "model.json").is_file()


def _configure(root: Path, llm: FakeLLM, data: dict, extra_route: str = "") -> Project:
    route = data["routes_yaml"].split("\n", 1)[1]  # the lines under `routes:`
    text = (root / "flywheel.yaml").read_text(encoding="utf-8").split("routes:")[0]
    (root / "flywheel.yaml").write_text(text + "routes:\n" + route + extra_route, encoding="utf-8")
    return Project.load(root)


@pytest.fixture
def spans():
    got: list = []
    tracer.add_sink(got.append)
    yield got
    tracer.remove_sink(got.append)


def test_the_gateway_sends_easy_queries_to_small_and_hard_ones_to_strong(server, trained, spans,
                                                                         monkeypatch) -> None:
    root, data, _ = trained
    script(server)
    project = _configure(root, server, data)
    assert project.config.routes["ask"].router is not None
    monkeypatch.chdir(root.parent)  # the router's folder is found relative to flywheel.yaml, not the cwd
    easy = "What is the capital of Belgium?"
    hard = "First add 61 and 17, then multiply the sum by 3, and finally subtract 5. What is the result?"
    with Gateway.from_config(project.config) as gw:
        small = gw.chat(ChatRequest.of(easy, model="ask"))
        strong = gw.chat(ChatRequest.of(hard, model="ask"))
        assert small.alias == "small" and "Brussels" in small.text
        assert strong.alias == "large" and strong.text == "the strong answer"
        async_hard = asyncio.run(gw.achat(ChatRequest.of(hard.replace("61", "62"), model="ask")))
        assert async_hard.alias == "large"
        streamed = gw.stream(ChatRequest.of(easy, model="ask"))
        assert "Brussels" in "".join(c.delta for c in streamed)
        assert gw.resolve("ask").model == "fake-small"  # the default arm stands for the route
    routed = [s for s in spans if s.name == "route ask"]
    assert [s.attributes["flywheel.route.arm"] for s in routed] == ["small", "large", "large"]
    threshold = data["threshold"]
    for s in routed:
        p = s.attributes["flywheel.route.p_fail"]
        assert s.attributes["flywheel.route.threshold"] == threshold
        assert (p > threshold) == (s.attributes["flywheel.route.arm"] == "large")
    assert routed[0].attributes["flywheel.route.p_fail"] < threshold < routed[1].attributes["flywheel.route.p_fail"]


def test_flywheel_serve_routes_each_request_and_stores_the_choice_on_its_trace(server, trained) -> None:
    import httpx
    from server_support import LiveServer

    from flywheel.server import create_app
    from flywheel.tracing import get_trace

    root, data, _ = trained
    script(server)
    live = LiveServer(create_app(_configure(root, server, data))).start()
    try:
        arms = {}
        for text in ("What is the capital of Estonia?", "Compute ((41 + 27) * 3) - 6, step by step."):
            reply = httpx.post(f"{live.url}/v1/chat/completions", timeout=30,
                               json={"model": "ask", "messages": [{"role": "user", "content": text}]})
            assert reply.status_code == 200, reply.text
            tracer.flush()
            trace = get_trace(live.state.store, reply.headers["x-flywheel-trace-id"])
            assert trace is not None
            stack, route_spans = list(trace["spans"]), []
            while stack:
                span = stack.pop()
                stack.extend(span.get("children") or [])
                if span["name"] == "route ask":
                    route_spans.append(span)
            assert len(route_spans) == 1, trace
            attrs = route_spans[0]["attributes"]
            arms[text] = (attrs["flywheel.route.arm"], reply.json()["choices"][0]["message"]["content"])
            assert (attrs["flywheel.route.p_fail"] > attrs["flywheel.route.threshold"]) == (arms[text][0] == "large")
    finally:
        live.stop()
    assert list(arms.values()) == [("small", "The capital is Tallinn."), ("large", "the strong answer")]


def test_route_report_counts_the_router_arms(server, trained) -> None:
    root, data, _ = trained
    script(server)
    project = _configure(root, server, data)
    from flywheel.apps.runtime import Runtime

    with Runtime(project) as rt:
        rt.gateway.chat(ChatRequest.of("What is the capital of Latvia?", model="ask"))
        rt.gateway.chat(ChatRequest.of("Compute ((8 + 9) * 2) - 3, step by step.", model="ask"))
    result = run(root, "route", "report", "ask", "--json")
    assert result.exit_code == 0, result.output
    arms = json.loads(result.stdout)["routes"]["ask"]["arms"]
    assert arms["small"]["requests"] >= 1 and arms["large"]["requests"] >= 1


def test_bad_input_exits_2_with_a_clear_message(server, trained, tmp_path: Path) -> None:
    root, data, _ = trained
    script(server)
    _configure(root, server, data)
    cases = [("--small", "smal"), ("--strong", "huge")]
    for option, alias in cases:
        args = {"--small": "small", "--strong": "large", option: alias}
        result = run(root, "route", "train-router", "x", "--small", args["--small"], "--strong", args["--strong"],
                     "--suite", "mixed", "--runs", "abcd,efgh")
        assert result.exit_code == 2 and alias in result.stderr and option in result.stderr, result.output
        assert "Traceback" not in result.output
    no_run = run(root, "route", "train-router", "x", "--small", "small", "--strong", "large", "--suite", "mixed",
                 "--runs", "zzzzzz,yyyyyy")
    assert no_run.exit_code == 2 and "no eval run" in no_run.stderr, no_run.output
    swapped = run(root, "route", "train-router", "x", "--small", "small", "--strong", "large", "--suite", "mixed",
                  "--runs", ",".join(reversed(data["runs"])))
    assert swapped.exit_code == 2 and "not 'small'" in swapped.stderr, swapped.output
    (root / "evals" / "other.yaml").write_text(
        "name: other\ntarget: model:small\nprompt: '{{question}}'\ncases:\n"
        "  - {id: a, vars: {question: hi}, checks: [{contains: x}]}\n", encoding="utf-8")
    other = run(root, "route", "train-router", "x", "--small", "small", "--strong", "large", "--suite", "other",
                "--runs", ",".join(data["runs"]))
    assert other.exit_code == 2 and "not 'other'" in other.stderr, other.output
    one = run(root, "route", "train-router", "x", "--small", "small", "--strong", "large", "--suite", "mixed",
              "--runs", data["runs"][0])
    assert one.exit_code == 2 and "two run ids" in one.stderr


def test_a_suite_the_small_model_never_fails_is_refused(server, tmp_path: Path) -> None:
    server.reset()
    server.add(r".", "Paris Rome Madrid")
    write_project(tmp_path, server)
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "easy.yaml").write_text(suite_yaml(
        [{"id": f"c{i}", "q": f"Capital number {i}?", "a": "Paris"} for i in range(12)]), encoding="utf-8")
    result = run(tmp_path, "route", "train-router", "easy", "--small", "small", "--strong", "large",
                 "--suite", "evals/easy.yaml")
    assert result.exit_code == 2 and "too few to learn" in result.stderr, result.output


def test_a_missing_router_file_is_a_config_error_with_file_and_line(server, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        write_project(tmp_path, server, "ask:\n  router: {model: nowhere, small: small, strong: large, "
                                        "threshold: 0.5}\n")
    assert "no query router" in err.value.message and "flywheel.yaml:10" in (err.value.where or "")
    result = run(tmp_path, "route", "report")
    assert result.exit_code == 2 and "flywheel.yaml:10" in result.stderr and "train-router" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("router", "needle"), [
    ("{model: r, small: smal, strong: large, threshold: 0.5}", "smal"),
    ("{model: r, small: small, strong: small, threshold: 0.5}", "two different aliases"),
    ("{model: r, small: small, strong: large, threshold: 1.5}", "threshold"),
    ("{model: r, small: small, strong: large}", "threshold"),
])
def test_bad_router_config_is_refused(server, tmp_path: Path, router: str, needle: str) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "model.json").write_text("{}", encoding="utf-8")
    (tmp_path / "r" / "weights.npz").write_bytes(b"")
    with pytest.raises(ConfigError) as err:
        write_project(tmp_path, server, f"ask:\n  router: {router}\n")
    assert needle in str(err.value) and "flywheel.yaml:" in (err.value.where or ""), str(err.value)


def test_a_broken_router_file_fails_when_the_gateway_is_built(server, trained, tmp_path: Path) -> None:
    _, data, _ = trained
    for name, files in {"broken": {"model.json": "{not json", "weights.npz": ""},
                        "check": {"model.json": json.dumps({"features": "tfidf", "name": "x"})}}.items():
        folder = tmp_path / name
        folder.mkdir()
        if name == "check":  # a trained check's folder, not a router's
            import shutil

            shutil.copy(Path(data["path"]) / "weights.npz", folder / "weights.npz")
        for file, text in files.items():
            (folder / file).write_text(text, encoding="utf-8")
        project = write_project(tmp_path, server, f"ask:\n  router: {{model: {name}, small: small, strong: large, "
                                                  "threshold: 0.5}\n")
        with pytest.raises(UserError) as err:
            Gateway.from_config(project.config)
        assert "route 'ask'" in err.value.message, err.value.message
        assert ("cannot load" in err.value.message) if name == "broken" else ("not a query router" in err.value.message)
    swapped = write_project(tmp_path, server, f"ask:\n  router: {{model: {data['path']}, small: large, strong: small, "
                                              "threshold: 0.5}\n")
    with pytest.raises(UserError, match="trained for small=small, strong=large"):
        Gateway.from_config(swapped.config)


def test_an_embedding_router_trains_and_serves_through_the_async_path(server, tmp_path: Path, spans) -> None:
    from flywheel.loop.query_router import Outcome, save_router, train_router
    from flywheel.retrieval.embedders import local_embedder

    try:
        local_embedder().embed(["probe"])
    except UserError as exc:  # sentence-transformers or its weights not installed here
        pytest.skip(str(exc))
    outcomes = [Outcome(c["id"], c["q"], float(c["a"] in answer(c["q"], strong=False)),
                        float(c["a"] in answer(c["q"], strong=True)), 1.0, 10.0) for c in make_cases()]
    fit = train_router(outcomes, features="embedding", target_quality=0.95)
    held = fit.report["heldout"]
    assert held["quality_kept"] >= 0.9 and held["small_share"] >= 0.3, held
    save_router(tmp_path / "routers" / "ask", fit, {"name": "ask", "small": "small", "strong": "large"})
    script(server)
    project = write_project(tmp_path, server, "ask:\n  router: {model: routers/ask, small: small, strong: large, "
                                              f"threshold: {fit.threshold}}}\n")
    with Gateway.from_config(project.config) as gw:
        assert gw.router.query_routers["ask"].blocking  # scored on a worker thread in achat

        async def both() -> list:
            return [await gw.achat(ChatRequest.of(q, model="ask")) for q in
                    ("What is the capital of Latvia?", "Compute ((33 + 14) * 2) - 9, step by step.")]

        easy, hard = asyncio.run(both())
    assert (easy.alias, hard.alias) == ("small", "large")
    routed = [s for s in spans if s.name == "route ask"]
    assert [s.attributes["flywheel.route.arm"] for s in routed] == ["small", "large"]
