"""Prompt audit as a new user following docs/prompts.md: Jinja syntax (`{% if %}`, `{# #}`) that used to reach the
model as literal text, errors that pointed at the key's line instead of the line inside a `|` block, a variable
not given that named no line (and listed `examples`/`sources` as "given"), an example missing a field whose hint
sent users to `flywheel init` (which writes no examples), a `"\n\n"` separator that `prompts show` folded over
three lines, two files declaring one name that `register` stored as two versions of it, a diff of a long example
list that printed every example, similar-example selection that re-tokenized every example on every request,
and labels: `生产` refused although prompt names may be Chinese, `prod\n` accepted. Plus a served app that
follows a moved label through the openai SDK (polled, bounded)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import flywheel.cli.prompts  # noqa: F401 - registers the `prompts` group
from flywheel.cli import main
from flywheel.errors import UserError
from flywheel.prompts import PromptRegistry
from flywheel.prompts.diff import dump_yaml
from flywheel.prompts.registry import load_prompt_file
from flywheel.store import Store


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def project(tmp_path):
    write(tmp_path / "flywheel.yaml", "models: {default: {provider: extractive}}\n")
    return tmp_path


def run(root, *args, code=0):
    result = CliRunner().invoke(main, ["--project", str(root), "prompts", *args])
    assert result.exit_code == code, result.output
    return result


@pytest.mark.parametrize(("body", "line", "tag"), [
    ("template: |-\n  Question: {{question}}\n\n  {% if lang %}Answer in {{lang}}.{% endif %}\n", 5, "{% if lang %}"),
    ("template: |-\n  Q: {{question}}\n  {%- for s in items %}x{% endfor %}\n", 4, "{%- for s in items %}"),
    ("system: 'Be brief. {# internal note #}'\ntemplate: 'Q: {{question}}'\n", 2, "{# internal note #}"),
])
def test_a_jinja_tag_is_an_error_at_its_line(tmp_path, body, line, tag):
    path = write(tmp_path / "prompts" / "qa.yaml", "name: qa\n" + body)
    with pytest.raises(UserError) as err:
        load_prompt_file(path)
    assert err.value.where == f"{path}:{line}"
    assert tag in str(err.value) and "Jinja" in str(err.value)


def test_a_percent_sign_in_text_is_not_a_jinja_tag(tmp_path):
    path = write(tmp_path / "prompts" / "qa.yaml", "template: 'Q: {{question}} (50%) {%s}'\n")
    assert load_prompt_file(path).render(question="x").user == "Q: x (50%) {%s}"


def test_a_malformed_placeholder_in_a_block_points_at_its_own_line(tmp_path):
    path = write(tmp_path / "prompts" / "qa.yaml",
                 "name: qa\nsystem: |-\n  Be brief.\ntemplate: |-\n  Sources:\n\n  {{sources}}\n\n"
                 "  Question: {{ question }\n")
    with pytest.raises(UserError) as err:
        load_prompt_file(path)
    assert err.value.where == f"{path}:9"  # the line of `{{ question }`, not `template:` (4)


def test_a_variable_not_given_names_its_line_and_only_what_the_caller_gave(tmp_path):
    path = write(tmp_path / "prompts" / "qa.yaml",
                 "template: |-\n  Sources: {{sources}}\n  Product: {{product}}\n  Question: {{question}}\n")
    prompt = load_prompt_file(path)
    with pytest.raises(UserError) as err:
        prompt.render(question="How?", prodcut="X")
    assert err.value.where == f"{path}:3"
    assert "product" in str(err.value) and "did you mean prodcut" in str(err.value)
    hint = err.value.hint or ""
    assert "given: prodcut, question " in hint  # `sources` / `examples` are built by flywheel, not given


def test_a_chinese_prompt_names_the_line_of_the_missing_variable(tmp_path):
    path = write(tmp_path / "prompts" / "客服.yaml", "system: |-\n  你是客服。\n  产品：{{product}}\n"
                 "template: '问题：{{question}}'\n")
    with pytest.raises(UserError) as err:
        load_prompt_file(path).render(question="怎么退款？")
    assert err.value.where == f"{path}:3" and "product" in str(err.value)


def test_a_chinese_placeholder_name_is_refused_at_its_line(tmp_path):
    path = write(tmp_path / "prompts" / "客服.yaml", "system: |-\n  你是客服。\n  产品：{{产品}}\n"
                 "template: '问题：{{question}}'\n")
    with pytest.raises(UserError) as err:
        load_prompt_file(path)
    assert err.value.where == f"{path}:3" and "{{产品}}" in str(err.value)


def test_show_writes_a_line_break_separator_on_one_line(tmp_path):
    root = project(tmp_path)
    write(root / "prompts" / "qa.yaml", "template: 'Q: {{question}}'\nsources: {separator: \"\\n\\n\"}\n")
    out = run(root, "show", "qa").output
    assert 'separator: "\\n\\n"' in out
    assert dump_yaml({"separator": "\n\n"}) == 'separator: "\\n\\n"'


def test_register_refuses_two_project_files_declaring_one_name_differently(tmp_path):
    root = project(tmp_path)
    write(root / "prompts" / "support_qa.yaml", "name: support_qa\ntemplate: 'Q: {{question}}'\n")
    write(root / "prompts" / "support_qa_copy.yaml", "name: support_qa\ntemplate: 'Question: {{question}}'\n")
    out = run(root, "register", code=2).output
    assert "support_qa_copy.yaml" in out and "support_qa.yaml" in out and "nothing was stored" in out
    with Store.open(f"sqlite:///{root}/.flywheel/flywheel.db") as store:
        from flywheel.prompts.versions import PromptVersions

        assert PromptVersions(store).versions("support_qa") == []


def test_register_stores_the_project_prompt_that_replaces_a_packaged_one_only(tmp_path):
    root = project(tmp_path)
    write(root / "prompts" / "my_rerank.yaml", "name: rerank\ntemplate: 'Rank: {{question}}'\n")
    run(root, "register")
    mine = PromptRegistry(root).get("rerank")
    assert mine.path is not None and mine.path.endswith("my_rerank.yaml")
    with Store.open(f"sqlite:///{root}/.flywheel/flywheel.db") as store:
        from flywheel.prompts.versions import PromptVersions

        stored = [v.version for v in PromptVersions(store).versions("rerank")]
    assert stored == [mine.version]  # the packaged rerank is not a version of the project's rerank


SERVED = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
retrieval: {{embedder: none}}
cache: {{exact: false}}
apps:
  客服:
    model: gpt
    prompt: prompts/客服.yaml
    options: {{prompt_label: production}}
"""


def test_a_served_app_follows_a_moved_chinese_label_through_the_openai_sdk(tmp_path):
    import time

    import openai
    from server_support import serving

    from flywheel.testing.fake_llm import FakeLLM

    root = project(tmp_path)
    prompt = root / "prompts" / "客服.yaml"
    write(prompt, "name: 客服\nsystem: 只根据资料回答。\ntemplate: |-\n  资料：{{sources}}\n  问题：{{question}}\n")
    run(root, "label", "客服", "file", "--as", "production")
    write(prompt, "name: 客服\nsystem: 只根据资料回答。\ntemplate: |-\n  资料：{{sources}}\n  新版问题：{{question}}\n")
    run(root, "label", "客服", "file", "--as", "staging")
    diff = run(root, "diff", "客服", "production", "staging").output
    assert "{+新版+}问题" in diff

    with FakeLLM() as llm:
        llm.add(r".", lambda body: "答：" + body["messages"][-1]["content"])
        yaml_text = SERVED.format(base=llm.base_url)
        with serving(root, yaml_text, docs={"refund.md": "# 退款\n\n在订单页面申请退款，七天内到账。\n"}) as live:
            client = openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)

            def answer() -> str:
                r = client.chat.completions.create(model="app:客服",
                                                   messages=[{"role": "user", "content": "怎么申请退款？"}])
                return r.choices[0].message.content or ""

            assert "新版问题" not in answer()  # pinned: the edited file is not served
            run(root, "label", "客服", "staging", "--as", "production")
            for _ in range(200):  # the app re-reads the label at most every 2 s: poll, bounded
                if "新版问题" in answer():
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the app never followed the moved label")
            run(root, "rollback", "客服")
            for _ in range(200):
                if "新版问题" not in answer():
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the app never followed the rollback")


@pytest.mark.parametrize("example", ["{input: a}", "{input: a, output: }", "{messages: [{role: user, content: hi}]}"])
def test_an_example_missing_a_field_says_how_to_write_one(tmp_path, example):
    path = write(tmp_path / "prompts" / "qa.yaml",
                 f"template: 'Q: {{{{question}}}}'\nexamples:\n  - {{input: x, output: y}}\n  - {example}\n")
    with pytest.raises(UserError) as err:
        load_prompt_file(path)
    assert err.value.where == f"{path}:4"
    assert "flywheel init" not in (err.value.hint or "")  # init writes no examples to copy
    assert "{input: …, output: …}" in (err.value.hint or "")


def test_the_diff_of_a_huge_example_list_shows_the_change_not_every_example(tmp_path):
    root = project(tmp_path)
    rows = "".join(f"  - {{input: 问题{i}, output: 回答{i}}}\n" for i in range(300))
    prompt = write(root / "prompts" / "qa.yaml", f"template: '问：{{{{question}}}}'\nexamples:\n{rows}")
    run(root, "label", "qa", "file", "--as", "production")
    prompt.write_text(prompt.read_text(encoding="utf-8").replace("回答150}", "新的回答150}"), encoding="utf-8")
    out = run(root, "diff", "qa", "production", "file").output
    assert "{+新的+}回答150" in out
    assert "问题149" in out and "问题0\n" not in out and "问题299" not in out and "unchanged line(s)" in out
    assert len(out.splitlines()) < 30
    full = json.loads(run(root, "diff", "qa", "production", "file", "--json").output)
    assert "问题299" in "".join(text for _, text in full["fields"]["examples"])  # --json keeps every line


def test_similar_examples_are_tokenized_once_not_on_every_request(monkeypatch):
    import uuid

    from flywheel.prompts import Prompt
    from flywheel.prompts import examples as examples_module
    from flywheel.prompts.examples import Example, Shots

    calls: list[str] = []
    real = examples_module.tokenize
    monkeypatch.setattr(examples_module, "tokenize", lambda text: calls.append(text) or real(text))
    tag = uuid.uuid4().hex  # texts no earlier test has tokenized
    rows = tuple(Example(input=f"{tag} 问题 {i} topic{i}", output=f"回答 {i}") for i in range(200))
    prompt = Prompt(name="big", template="Q: {{question}}", examples=rows, shots=Shots(k=3, select="similar"))
    first = prompt.render(question=f"{tag} topic7").examples
    second = prompt.render(question=f"{tag} topic9 问题").examples
    assert first[-1] == 7 and second[-1] == 9  # the most similar example is last
    assert sum(tag in c for c in calls) == 200 + 2  # each example once, plus the two questions


def test_a_chinese_label_works_like_a_chinese_prompt_name(tmp_path):
    root = project(tmp_path)
    write(root / "prompts" / "客服.yaml", "template: '问题：{{question}}'\n")
    assert "生产 →" in run(root, "label", "客服", "file", "--as", "生产").output
    shown = json.loads(run(root, "show", "客服", "--label", "生产", "--json").output)
    assert shown["labels"] == ["生产"]


@pytest.mark.parametrize("label", ["1prod", "_prod", "prod\n", "pro d", "生 产"])
def test_a_label_still_starts_with_a_letter_and_has_no_space_or_line_break(tmp_path, label):
    from flywheel.prompts.versions import check_label

    with pytest.raises(UserError):
        check_label(label)
