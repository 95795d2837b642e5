# ruff: noqa: F811 - pytest fixtures imported from conftest are redefined as parameters
"""promptfoo configs as people write them (modelled on promptfoo's own examples, kept small in
tests/data/promptfoo_wild/) run through `flywheel eval` against the fake LLM: YAML 1.2 scalars, trimmed prompt
files, `$ref` assertion templates, chat prompts in content parts, `scenarios`, per-provider `prompts`,
`{label, messages}` prompts, bare prompt file names, the `echo` provider, context-recall / context-relevance,
`assert-set`; and the JavaScript-only features as errors at file:line."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import llm  # noqa: F401 - fixture

from flywheel.cli import main
from flywheel.config import Project
from flywheel.errors import UserError
from flywheel.evals.promptfoo import load_promptfoo

WILD = Path(__file__).parent / "data" / "promptfoo_wild"


def example(name: str, root: Path, llm) -> Path:
    """The fixture folder copied into `root`, with a flywheel.yaml whose aliases the fake LLM serves."""
    shutil.copytree(WILD / name, root, dirs_exist_ok=True)
    (root / "flywheel.yaml").write_text(
        textwrap.dedent(f"""\
        models:
          small: {{provider: openai_compat, base_url: "{llm.base_url}", model: gpt-fake-small, max_retries: 0}}
          strong: {{provider: openai_compat, base_url: "{llm.base_url}", model: gpt-fake-strong, max_retries: 0}}
          judge: {{provider: openai_compat, base_url: "{llm.base_url}", model: gpt-fake-judge, max_retries: 0}}
          claude: {{provider: anthropic, base_url: "{llm.anthropic_base_url}", model: claude-fake,
                   max_retries: 0, params: {{max_tokens: 300}}}}
        tracing: {{enabled: false}}
        """),
        encoding="utf-8",
    )
    return root / "promptfooconfig.yaml"


def run_eval(config: Path) -> tuple[int, dict]:
    result = CliRunner().invoke(
        main, ["--project", str(config.parent), "eval", str(config), "--json", "--results", "--fresh"]
    )
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}


def results(data: dict) -> dict[tuple[str, str | None], dict[str, dict]]:
    """{(suite, model): {case id: result}} of a --json --results run."""
    out = {}
    for suite in data["suites"]:
        for run in suite.get("runs") or [suite]:
            out[(run["suite"], run.get("model"))] = {r["case_id"]: r for r in run["results"]}
    return out


def sent(llm, model: str) -> list[str]:
    return sorted(r["messages"][-1]["content"] for r in llm.requests if r.get("model") == model)


def test_yaml12_scalars_trimmed_prompt_file_and_assertion_templates(tmp_path: Path, llm) -> None:
    llm.add(r"fox", "Arrr, the quick brown fox, matey!")
    config = example("simple_test", tmp_path, llm)
    code, data = run_eval(config)
    # `body: Yes` is text in promptfoo (YAML 1.2), and prompt files are trimmed
    assert sent(llm, "gpt-fake-small") == [
        "Rephrase this like a pirate: The quick brown fox",
        "Rephrase this like a pirate: Yes",
    ]
    (cases,) = results(data).values()
    assert not cases["exact match"]["passed"] and code == 1
    template = cases["template"]
    assert template["passed"] and [c["name"] for c in template["checks"]] == ["icontains", "not-icontains"]


def test_chat_prompt_in_content_parts_and_no_effect_provider_config(tmp_path: Path, llm) -> None:
    llm.add(r"without a mouth", "An echo.")
    llm.add(r"grow", "Fire.")
    config = example("claude_vs_gpt", tmp_path, llm)
    (suite,) = load_promptfoo(config, Project.load(tmp_path))
    assert suite.models == ["claude", "small"]
    assert any("cache_control" in w and "ignored" in w for w in suite.warnings)
    code, data = run_eval(config)
    assert code == 0, data
    assert all(r["passed"] for cases in results(data).values() for r in cases.values())
    anthropic = [r for r in llm.requests if r["path"] == "/v1/messages"]
    assert anthropic and all("Be concise" in json.dumps(r.get("system")) for r in anthropic)
    openai = [r for r in llm.requests if r.get("model") == "gpt-fake-small"]
    assert {r["messages"][0]["content"] for r in openai} == {"Be concise"}
    assert "Answer this riddle:\nI speak without a mouth and hear without ears. What am I?" in sent(
        llm, "gpt-fake-small"
    )


def test_scenarios_cross_their_config_with_their_tests(tmp_path: Path, llm) -> None:
    llm.add(r"Spanish", "Hola mundo")
    llm.add(r"French", "Bonjour le monde")
    config = example("scenarios", tmp_path, llm)
    suites = load_promptfoo(config, Project.load(tmp_path))
    assert [len(s.cases) for s in suites] == [2, 2]  # two prompts × (two configs × one test)
    spanish, french = suites[0].cases
    assert spanish.vars["language"] == "Spanish" and spanish.vars["input"] == "Hello world"
    assert [c.name for c in spanish.checks] == ["icontains"]
    assert [c.name for c in french.checks] == ["not-icontains", "icontains"]  # the config's first
    code, _ = run_eval(config)
    assert code == 0 and len(llm.requests) == 4


def test_a_providers_prompts_limit_what_it_runs(tmp_path: Path, llm) -> None:
    config = example("prompts_per_model", tmp_path, llm)
    suites = load_promptfoo(config, Project.load(tmp_path))
    assert {s.name.rsplit(" · ", 1)[1]: s.models for s in suites} == {
        "tweet": ["small", "strong"],
        "haiku": ["small"],
    }
    code, _ = run_eval(config)
    assert code == 0
    assert sent(llm, "gpt-fake-strong") == ["Write a tweet about bananas"]
    assert sent(llm, "gpt-fake-small") == ["Write a haiku about bananas", "Write a tweet about bananas"]


def test_bare_prompt_file_and_messages_prompt(tmp_path: Path, llm) -> None:
    config = example("chat_messages", tmp_path, llm)
    code, _ = run_eval(config)
    assert code == 0
    assert sent(llm, "gpt-fake-small") == [
        "Explain NEURAL NETWORKS in simple terms.",
        "Explain neural networks to a beginner.",
    ]
    chat = next(r for r in llm.requests if r["messages"][-1]["content"].endswith("beginner."))
    assert chat["messages"][0] == {
        "role": "system",
        "content": "You are a helpful assistant specialized in machine learning.",
    }


def test_echo_provider_grades_canned_replies_and_threshold_zero_never_fails(tmp_path: Path, llm) -> None:
    llm.add(r"this includes", "It mixes Spanish and English.\nVerdict: FAIL", model="gpt-fake-judge")
    llm.add(r"", "One language.\nVerdict: PASS", model="gpt-fake-judge")
    config = example("echo_rubric", tmp_path, llm)
    code, data = run_eval(config)
    (cases,) = results(data).values()
    english, mixed = cases["english reply"], cases["mixed reply"]
    assert english["output"].strip() == "There is an open incident, the fix is due at 18:00."
    assert english["passed"] and [c["name"] for c in english["checks"]] == ["judge"]
    # promptfoo honours a threshold of 0: the scores are collected, the test never fails
    (check,) = mixed["checks"]
    assert mixed["passed"] and check["score"] == 0 and not check["details"]["assertions"][0]["passed"]
    assert code == 0 and {r.get("model") for r in llm.requests} == {"gpt-fake-judge"}


def test_context_recall_relevance_and_assert_set(tmp_path: Path, llm) -> None:
    llm.add(r"", "Supported.\nVerdict: PASS", model="gpt-fake-judge")
    llm.add(r"可再生能源", "可再生能源减少排放。")
    config = example("rag", tmp_path, llm)
    (suite,) = load_promptfoo(config, Project.load(tmp_path))
    assert any("derivedMetrics" in w for w in suite.warnings)
    code, data = run_eval(config)
    (cases,) = results(data).values()
    (case,) = cases.values()
    names = [c["name"] for c in case["checks"]]
    assert names == ["judge", "judge", "assert-set"], names
    assert code == 0 and case["passed"]
    assert_set = next(c for c in case["checks"] if c["name"] == "assert-set")
    assert assert_set["score"] == 0.5  # one of two parts: reaches its threshold
    judged = [r["messages"][-1]["content"] for r in llm.requests if r.get("model") == "gpt-fake-judge"]
    assert any("可再生能源创造就业" in j and "创造就业机会" in j for j in judged)  # recall: value + context
    assert any("可再生能源的主要好处是什么" in j for j in judged)  # relevance: the query


@pytest.mark.parametrize(
    ("name", "line", "says", "hint"),
    [
        ("json_transform", ":9", "`transform` is JavaScript", "is-json"),
        ("nunjucks_filters", ":4", "filters are JavaScript", "compute the value into a var"),
    ],
)
def test_javascript_features_are_errors_at_their_line(
    tmp_path: Path, llm, name: str, line: str, says: str, hint: str
) -> None:
    config = example(name, tmp_path, llm)
    with pytest.raises(UserError) as err:
        load_promptfoo(config, Project.load(tmp_path))
    assert err.value.where.endswith(line) and says in err.value.message and hint in (err.value.hint or "")
    result = CliRunner().invoke(main, ["--project", str(tmp_path), "eval", str(config)])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_default_test_from_a_file(tmp_path: Path, llm) -> None:
    config = example("prompts_per_model", tmp_path, llm)
    (tmp_path / "default.yaml").write_text(
        "vars: {tone: dry}\nassert:\n  - {type: not-icontains, value: sorry}\n"
    )
    text = config.read_text(encoding="utf-8").replace("tests:", "defaultTest: file://default.yaml\ntests:")
    config.write_text(text, encoding="utf-8")
    suites = load_promptfoo(config, Project.load(tmp_path))
    case = suites[0].cases[0]
    assert case.vars["tone"] == "dry" and [c.name for c in case.checks] == ["icontains", "not-icontains"]


def test_weight_zero_still_decides_and_metric_only_does_not(tmp_path: Path, llm) -> None:
    """promptfoo's AssertionsResult: weight 0 leaves the score, not the verdict; `metricOnly` leaves both."""
    llm.add(r"weather", "It is sunny.")
    example("prompts_per_model", tmp_path, llm)
    config = tmp_path / "weights.yaml"
    config.write_text(
        textwrap.dedent("""\
        prompts: ["Tell me the weather in {{place}}"]
        providers: [openai:chat:gpt-fake-small]
        tests:
          - description: weight-zero
            vars: {place: Rome}
            assert:
              - {type: icontains, value: sunny}
              - {type: icontains, value: rain, weight: 0}
          - description: metric-only
            vars: {place: Oslo}
            assert:
              - {type: icontains, value: sunny}
              - {type: icontains, value: rain, metricOnly: true, metric: rain}
        """),
        encoding="utf-8",
    )
    _, data = run_eval(config)
    (cases,) = results(data).values()
    assert not cases["weight-zero"]["passed"] and cases["weight-zero"]["score"] == 1.0
    metric_only = cases["metric-only"]
    assert metric_only["passed"] and metric_only["score"] == 1.0
    parts = metric_only["checks"][0]["details"]["assertions"]
    assert [(p["passed"], p["metric_only"]) for p in parts] == [(True, False), (False, True)]


def test_file_response_format_and_csv_assertion_config(tmp_path: Path, llm) -> None:
    llm.add(r"charged twice", '{"category": "billing"}')
    config = example("structured_output", tmp_path, llm)
    (suite,) = load_promptfoo(config, Project.load(tmp_path))
    (case,) = suite.cases
    rouge = case.checks[1]
    assert rouge.name == "rouge-n" and rouge.definition()["arg"]["threshold"] == 0.5  # __config:__expected2
    code, _ = run_eval(config)
    assert code == 0
    (request,) = [r for r in llm.requests if r.get("model") == "gpt-fake-small"]
    schema = json.loads((tmp_path / "schema.chat.json").read_text(encoding="utf-8"))
    assert request["response_format"] == schema and request["temperature"] == 0.2
