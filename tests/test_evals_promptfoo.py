# ruff: noqa: F811 - pytest fixtures imported from test_evals_support are redefined as parameters
"""`flywheel eval promptfooconfig.yaml`: a promptfoo config run natively (prompts × providers → model matrix,
tests from CSV / YAML, defaultTest, llm-rubric judged by the fake LLM, weights and thresholds), its errors at
file:line, and the overlap checks (levenshtein, rouge-n, bleu) it maps onto."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import need
from test_evals_support import llm, project  # noqa: F401 - fixtures

from flywheel.checks.base import CheckContext, build
from flywheel.cli import main
from flywheel.config import Project
from flywheel.errors import UserError
from flywheel.evals.promptfoo import load_promptfoo
from flywheel.evals.promptfoo_tests import assertion_from_string
from flywheel.evals.suite import load_suites
from flywheel.retrieval.embedders import local_available


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def run(root: Path, *args: str) -> object:
    return CliRunner().invoke(main, ["--project", str(root), *args], catch_exceptions=False)


CONFIG = """\
description: capitals
prompts:
  - "Answer briefly: what is the capital of {{country}}?"
  - file://prompts/chat.json
providers:
  - openai:chat:fake-small
  - id: openai:fake-strong
    label: strong one
    config: {temperature: 0, max_tokens: 50}
defaultTest:
  options: {provider: judge}
  assert:
    - type: llm-rubric
      value: "It names the capital of {{country}}."
    - type: not-contains
      value: London
tests: file://tests.csv
"""

CHAT = [
    {"role": "system", "content": "You are a geography teacher. Answer in one word."},
    {"role": "user", "content": "Capital of {{ country | upper }}?"},
]


def capitals(root: Path) -> Path:
    write(
        root / "tests.csv",
        "country,__expected,__description\nFrance,contains: Paris,france\nItaly,icontains: rome,italy\n",
    )
    write(root / "prompts" / "chat.json", json.dumps(CHAT))
    return write(root / "promptfooconfig.yaml", CONFIG)


def script_capitals(llm) -> None:
    llm.add(r"<output>\s*(Paris|Rome)", "It names the capital.\nVerdict: PASS", model="fake-judge")
    llm.add(r"<output>", "It names another city.\nVerdict: FAIL", model="fake-judge")
    llm.add(r"France", "London.", model="fake-small")
    llm.add(r"France", "Paris.", model="fake-strong")
    llm.add(r"Italy", "Rome.")


def test_prompts_times_providers_run_as_a_model_matrix(tmp_path: Path, llm, project) -> None:
    script_capitals(llm)
    config = capitals(tmp_path)
    result = run(tmp_path, "eval", str(config), "--json", "--results", "--fresh")
    assert result.exit_code == 0, result.output  # per prompt, one provider meets the threshold
    suites = json.loads(result.stdout)["suites"]
    assert [s["matrix"]["suite"] for s in suites] == [
        "capitals · Answer briefly: what is the capital of …",
        "capitals · chat.json",
    ]
    for suite in suites:
        rows = {r["model"]: r for r in suite["matrix"]["models"]}
        assert rows["small"]["pass_rate"] == 0.5 and rows["strong"]["pass_rate"] == 1.0
        assert suite["matrix"]["cheapest_meeting_threshold"] == "strong"
        small = next(r for r in suite["runs"] if r["model"] == "small")
        by_case = {r["case_id"]: r for r in small["results"]}
        france = {c["name"]: c["passed"] for c in by_case["france"]["checks"]}
        assert france == {"contains": False, "judge": False, "not-contains": False}
        assert all(c["passed"] for c in by_case["italy"]["checks"])
        assert [c["name"] for c in by_case["italy"]["checks"]] == ["icontains", "judge", "not-contains"]
    sent = [r for r in llm.requests if r.get("model") in ("fake-small", "fake-strong")]
    assert {r["messages"][-1]["content"] for r in sent} >= {
        "Capital of FRANCE?",
        "Capital of ITALY?",
        "Answer briefly: what is the capital of Italy?",
    }
    strong = [r for r in sent if r["model"] == "fake-strong"]
    assert strong and all(r["temperature"] == 0 and r["max_tokens"] == 50 for r in strong)
    assert all("temperature" not in r for r in sent if r["model"] == "fake-small")
    chat = [r for r in sent if r["messages"][-1]["content"].startswith("Capital of")]
    assert chat[0]["messages"][0] == {"role": "system", "content": CHAT[0]["content"]}
    judged = [r for r in llm.requests if r.get("model") == "fake-judge"]
    assert judged and all("It names the capital of " in r["messages"][-1]["content"] for r in judged)
    listed = json.loads(run(tmp_path, "eval", "--list", "--json").stdout)
    assert {r["model"] for r in listed} == {"small", "strong"} and len(listed) == 4  # stored like any run


def test_one_provider_runs_plainly_and_models_overrides(tmp_path: Path, llm, project) -> None:
    script_capitals(llm)
    capitals(tmp_path)
    write(
        tmp_path / "evals" / "pf.yaml",
        CONFIG.replace("  - file://prompts/chat.json\n", "")
        .replace("file://tests.csv", "file://../tests.csv")
        .replace(
            "  - id: openai:fake-strong\n    label: strong one\n"
            "    config: {temperature: 0, max_tokens: 50}\n",
            "",
        ),
    )
    plain = run(tmp_path, "eval", "evals/pf.yaml", "--json")
    summary = json.loads(plain.stdout)["suites"][0]
    assert plain.exit_code == 1 and summary["pass_rate"] == 0.5 and summary["target"] == "model:small"
    assert summary["by_check"]["judge"]["passed"] == 1
    both = run(tmp_path, "eval", "evals/pf.yaml", "--models", "small,strong", "--json")
    assert both.exit_code == 0 and len(json.loads(both.stdout)["suites"][0]["runs"]) == 2
    table = run(tmp_path, "eval", "evals/pf.yaml", "--no-progress")
    assert "FAIL" in table.stdout and "france" in table.stdout
    strategies = run(tmp_path, "eval", "evals/pf.yaml", "--strategies", "none,self_consistency:3", "--json")
    compared = json.loads(strategies.stdout)["suites"][0]["strategies"]
    assert [r["strategy"] for r in compared["strategies"]] == ["none", "self_consistency:3"]
    assert [r["pass_rate"] for r in compared["strategies"]] == [0.5, 0.5]


def test_chinese_vars_prompts_yaml_tests_and_list_expansion(tmp_path: Path, llm, project) -> None:
    llm.add(r"北京", "北京是中国的首都。")
    llm.add(r"上海", "上海不是首都。")
    write(
        tmp_path / "tests.yaml",
        """\
        - description: 首都
          vars: {city: [北京, 上海], note: file://note.txt}
          assert:
            - {type: contains, value: "{{city}}"}
            - {type: contains-any, value: [首都, 城市]}
            - {type: not-icontains, value: 东京}
        """,
    )
    write(tmp_path / "note.txt", "请用中文回答。")
    config = write(
        tmp_path / "pf.yaml",
        """\
        prompts: ["{{note}} {{city}}是中国的首都吗？"]
        providers: [small]
        tests: file://tests.yaml
        """,
    )
    suites = load_suites(config, Project.load(tmp_path))
    assert len(suites) == 1 and [c.id for c in suites[0].cases] == ["首都#1", "首都#2"]
    assert suites[0].cases[0].vars == {"city": "北京", "note": "请用中文回答。"}
    result = run(tmp_path, "eval", str(config), "--json", "--results")
    summary = json.loads(result.stdout)["suites"][0]
    assert result.exit_code == 0, result.output
    assert summary["pass_rate"] == 1.0 and summary["cases"] == 2
    assert {r["output"] for r in summary["results"]} == {"北京是中国的首都。", "上海不是首都。"}
    assert llm.requests[0]["messages"][-1]["content"] in (
        "请用中文回答。 北京是中国的首都吗？",
        "请用中文回答。 上海是中国的首都吗？",
    )


def test_weights_and_threshold_score_like_promptfoo(tmp_path: Path, llm, project) -> None:
    llm.add(r"weather", "It is sunny in Paris today.")
    config = write(
        tmp_path / "pf.yaml",
        """\
        prompts: ["Tell me the weather: {{ place | trim | lower }}"]
        providers: [openai:chat:fake-small]
        tests:
          - description: scored
            threshold: 0.7
            vars: {place: "  PARIS  "}
            assert:
              - {type: icontains, value: sunny, weight: 3}
              - {type: contains, value: rain}
              - {type: levenshtein, value: "It is sunny in Paris today", threshold: 2}
          - description: strict
            vars: {place: Rome}
            assert:
              - {type: contains, value: sunny}
              - {type: contains, value: rain, weight: 0}
              - {type: starts-with, value: It}
          - description: too-low
            threshold: 0.9
            vars: {place: Oslo}
            assert:
              - {type: contains, value: sunny}
              - {type: contains, value: rain}
              - {type: rouge-n, value: "It is rainy in Oslo", threshold: 0.5}
        """,
    )
    result = run(tmp_path, "eval", str(config), "--json", "--results")
    results = {r["case_id"]: r for r in json.loads(result.stdout)["suites"][0]["results"]}
    assert results["scored"]["passed"] and results["scored"]["score"] == pytest.approx(
        4 / 5
    )  # (3 + 0 + 1) / 5
    assert not results["strict"]["passed"]  # as in promptfoo, a weight-0 miss still fails
    assert not results["too-low"]["passed"]
    parts = results["too-low"]["checks"][0]["details"]["assertions"]
    assert [p["name"] for p in parts] == ["contains", "contains", "rouge-n"] and parts[2]["score"] == 0.6
    # cases run concurrently, so the order of requests is not the order of cases
    sent = {r["messages"][-1]["content"] for r in llm.requests}
    assert "Tell me the weather: paris" in sent, sent


BAD = [
    ("javascript", "- {type: javascript, value: 'output.length > 3'}", ":8", "supported types"),
    ("typo", "- {type: contians, value: x}", ":8", "not supported"),
    ("python", "- {type: python, value: 'True'}", ":8", "Python check plugin"),
    ("no value", "- {type: contains}", ":8", "needs a `value:`"),
    ("cost", "- {type: cost}", ":8", "needs `threshold:`"),
]


@pytest.mark.parametrize(("what", "line", "where", "says"), BAD, ids=[b[0] for b in BAD])
def test_bad_assertions_name_file_and_line(
    tmp_path: Path, project, what: str, line: str, where: str, says: str
) -> None:
    config = write(
        tmp_path / "promptfooconfig.yaml",
        f"""\
        prompts: ["Q: {{{{q}}}}"]
        providers: [small]
        tests:
          - vars: {{q: hi}}
            assert:
              - {{type: contains, value: a}}
              - {{type: contains, value: b}}
              {line}
        """,
    )
    with pytest.raises(UserError) as err:
        load_promptfoo(config, project)
    assert err.value.where == f"{config}{where}" and says in str(err.value.message) + str(err.value.hint)


def test_bad_inputs_are_user_errors_with_file_and_line(tmp_path: Path, project) -> None:
    def error(text: str) -> UserError:
        config = write(tmp_path / "promptfooconfig.yaml", text)
        with pytest.raises(UserError) as err:
            load_promptfoo(config, project)
        return err.value

    missing = error('prompts: ["Q: {{q}}"]\nproviders: [small]\ntests: file://nope.csv\n')
    assert missing.where.endswith("promptfooconfig.yaml:3") and "nope.csv" in missing.message
    undefined = error(
        'prompts: ["Q: {{q}} {{topic}}"]\nproviders: [small]\ntests:\n  - vars: {q: hi}\n'
        "    assert: [{type: contains, value: a}]\n"
    )
    assert undefined.where.endswith(":4") and "topic" in undefined.message
    filt = error('prompts: ["Q: {{ q | reverse }}"]\nproviders: [small]\ntests:\n  - vars: {q: hi}\n')
    assert filt.where.endswith(":1") and "reverse" in filt.message and "dump" in (filt.hint or "")
    tag = error(
        'prompts: ["{% for x in xs %}{{x}}{% endfor %}"]\nproviders: [small]\ntests:\n  - vars: {xs: 1}\n'
    )
    assert "tags are not supported" in tag.message
    provider = error(
        'prompts: ["Q: {{q}}"]\nproviders: [openai:chat:gpt-4o-mini]\ntests:\n  - vars: {q: hi}\n'
    )
    assert provider.where.endswith(":2") and "gpt-4o-mini" in provider.message
    assert "small (openai_compat fake-small)" in (provider.hint or "") and "models:" in (provider.hint or "")
    config_key = error(
        'prompts: ["Q: {{q}}"]\nproviders:\n  - {id: small, config: {top_p: 0.5}}\n'
        "tests:\n  - vars: {q: hi}\n"
    )
    assert config_key.where.endswith(":3") and "params:" in (config_key.hint or "")
    unknown = error('prompts: ["Q"]\nproviders: [small]\nredteam: {}\ntests:\n  - vars: {q: hi}\n')
    assert unknown.where.endswith(":3") and "redteam" in unknown.message
    grader = error(
        'prompts: ["Q"]\nproviders: [small]\ntests:\n  - vars: {q: hi}\n'
        "    assert: [{type: llm-rubric, value: polite}]\n"
    )
    assert grader.where.endswith(":5") and "default" in grader.message
    stray = error('prompts: ["Q: {{q}"]\nproviders: [small]\ntests:\n  - vars: {q: hi}\n')
    assert stray.where.endswith(":1") and "malformed placeholder" in stray.message
    write(
        tmp_path / "chat.json",
        json.dumps(
            [
                {"role": "user", "content": "Hi {{q}}"},
                {"role": "assistant", "content": "Hello"},
                {"role": "user", "content": "{{q}}?"},
            ]
        ),
    )
    chat = error("prompts: [file://chat.json]\nproviders: [small]\ntests:\n  - vars: {q: hi}\n")
    assert chat.where.endswith("chat.json:1") and "earlier chat turns" in chat.message


def test_load_suite_reads_a_promptfoo_config_with_one_prompt(tmp_path: Path, project) -> None:
    from flywheel.evals.suite import load_suite

    capitals(tmp_path)
    with pytest.raises(UserError) as err:
        load_suite(tmp_path / "promptfooconfig.yaml", project)
    assert "2 prompts" in err.value.message
    one = write(tmp_path / "one.yaml", CONFIG.replace("  - file://prompts/chat.json\n", ""))
    suite = load_suite(one, project)
    assert suite.name == "capitals" and suite.models == ["small", "strong"]
    assert suite.target.params == {"strong": {"temperature": 0, "max_tokens": 50}}
    assert suite.judge == "judge" and [c.id for c in suite.cases] == ["france", "italy"]


def test_cli_exit_code_2_without_traceback(tmp_path: Path, project) -> None:
    config = write(
        tmp_path / "promptfooconfig.yaml",
        'prompts: ["Q: {{q}}"]\nproviders: [small]\ntests:\n  - vars: {q: hi}\n'
        '    assert: [{type: javascript, value: "1"}]\n',
    )
    result = run(tmp_path, "eval", str(config))
    assert result.exit_code == 2 and f"{config}:5" in result.stderr and "Traceback" not in result.output


def test_csv_assertion_strings() -> None:
    assert assertion_from_string("Paris") == {"type": "equals", "value": "Paris"}
    assert assertion_from_string("contains: Paris") == {"type": "contains", "value": "Paris"}
    assert assertion_from_string("not-icontains:sorry") == {"type": "not-icontains", "value": "sorry"}
    assert assertion_from_string("similar(0.8): The capital") == {
        "type": "similar",
        "value": "The capital",
        "threshold": 0.8,
    }
    assert assertion_from_string("contains-any: a, b") == {"type": "contains-any", "value": ["a", "b"]}
    assert assertion_from_string("grade: is polite") == {"type": "llm-rubric", "value": "is polite"}
    assert assertion_from_string("is-json") == {"type": "is-json"}
    assert assertion_from_string("yes: sir") == {"type": "equals", "value": "yes: sir"}


def test_overlap_checks() -> None:
    ctx = CheckContext()
    assert build("levenshtein", {"value": "kitten", "max": 3}).run("sitting", ctx).details["distance"] == 3
    assert not build("levenshtein", {"value": "kitten", "max": 2}).run("sitting", ctx).passed
    rouge = build("rouge-n", {"value": "the cat sat on the mat", "threshold": 0.5}).run("the cat sat", ctx)
    assert rouge.passed and rouge.score == pytest.approx(0.5)
    zh = build("rouge-n", {"value": "北京是中国的首都"}).run("北京是首都", ctx)
    assert zh.score == pytest.approx(3 / 5)
    same = build("bleu", "the quick brown fox jumps").run("the quick brown fox jumps", ctx)
    assert same.passed and same.score == pytest.approx(1.0)
    assert build("bleu", "the quick brown fox jumps").run("a slow dog", ctx).score == 0.0
    assert build("not-bleu", {"value": "x y z", "threshold": 0.9}).run("x", ctx).passed
    missing = build("levenshtein").run("x", ctx)
    assert missing.error and not missing.passed
    with pytest.raises(UserError):
        build("rouge-n", {"value": "x", "threshold": 2})


def test_anthropic_provider_maps_to_the_alias_with_that_model(tmp_path: Path, llm) -> None:
    (tmp_path / "flywheel.yaml").write_text(
        textwrap.dedent(f"""\
        models:
          gpt: {{provider: openai_compat, base_url: "{llm.base_url}", model: claude-test, max_retries: 0}}
          claude: {{provider: anthropic, base_url: "{llm.anthropic_base_url}", model: claude-test,
                   max_retries: 0, params: {{max_tokens: 300}}}}
        tracing: {{enabled: false}}
        """),
        encoding="utf-8",
    )
    llm.add(r"capital", "Paris is the capital.")
    config = write(
        tmp_path / "pf.yaml",
        """\
        prompts: ["What is the capital of {{country}}?"]
        providers: [anthropic:messages:claude-test, openai:chat:claude-test]
        tests:
          - vars: {country: France}
            assert:
              - {type: icontains, value: paris}
              - {type: rouge-n, value: "Paris is the capital.", threshold: 0.9}
              - {type: is-json}
        """,
    )
    suite = load_promptfoo(config, Project.load(tmp_path))[0]
    assert suite.models == ["claude", "gpt"] and suite.target.name == "claude"
    result = run(tmp_path, "eval", str(config), "--json", "--results")
    rows = json.loads(result.stdout)["suites"][0]["runs"]
    assert result.exit_code == 1 and [r["model"] for r in rows] == ["claude", "gpt"]
    for row in rows:
        checks = {c["name"]: c["passed"] for c in row["results"][0]["checks"]}
        assert checks == {"icontains": True, "rouge-n": True, "is-json": False}
    assert {r["path"] for r in llm.requests} == {"/v1/messages", "/v1/chat/completions"}


def test_similar_uses_the_local_embedder(tmp_path: Path, llm, project) -> None:
    need(local_available(), "the local MiniLM embedder (extra `local`) is not installed")
    llm.add(r"capital", "Paris is the capital of France.")
    config = write(
        tmp_path / "pf.yaml",
        """\
        prompts: ["What is the capital of {{country}}?"]
        providers: [small]
        tests:
          - vars: {country: France}
            assert:
              - {type: similar, value: "The capital of France is Paris.", threshold: 0.8}
              - {type: not-similar, value: "Bananas are rich in potassium.", threshold: 0.5}
              - {type: similar, value: "Bananas are rich in potassium."}
        """,
    )
    result = run(tmp_path, "eval", str(config), "--json", "--results")
    checks = json.loads(result.stdout)["suites"][0]["results"][0]["checks"]
    assert [(c["name"], c["passed"]) for c in checks] == [
        ("similar", True),
        ("not-similar", True),
        ("similar", False),
    ]


def test_assertion_values_from_files_and_comma_lists(tmp_path: Path, llm, project) -> None:
    llm.add(r"person", '{"name": "Ann", "age": 31}')
    write(
        tmp_path / "schema.json",
        json.dumps(
            {"type": "object", "required": ["name", "age"], "properties": {"age": {"type": "integer"}}}
        ),
    )
    write(tmp_path / "strict.yaml", "type: object\nrequired: [email]\n")
    config = write(
        tmp_path / "pf.yaml",
        """\
        prompts: ["Describe a {{kind}} as JSON"]
        providers: [small]
        tests:
          - vars: {kind: person}
            assert:
              - {type: is-json, value: file://schema.json}
              - {type: not-is-json, value: file://strict.yaml}
              - {type: icontains-all, value: "ann, age"}
              - {type: contains-json}
        """,
    )
    result = run(tmp_path, "eval", str(config), "--json", "--results")
    checks = json.loads(result.stdout)["suites"][0]["results"][0]["checks"]
    assert result.exit_code == 0, [(c["name"], c["reason"]) for c in checks]
    assert [c["name"] for c in checks] == ["is-json", "not-is-json", "icontains-all", "contains-json"]
