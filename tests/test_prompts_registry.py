"""Prompt registry: n-shot examples, prefill, reasoning scaffold, structured-input formats, stored versions/labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from flywheel.errors import UserError
from flywheel.prompts import PromptRegistry, SourceItem, load_prompt, split_reasoning, strip_reasoning
from flywheel.prompts.diff import prompt_diff, render_word_diff, word_diff
from flywheel.prompts.examples import Example, Shots, lexical_similarity, select_examples
from flywheel.prompts.registry import builtin_dir, load_prompt_file
from flywheel.prompts.versions import PromptVersions
from flywheel.types import content_hash

BASE = "name: qa\nsystem: Be brief.\ntemplate: 'Q: {{question}}'\n"
FIVE = """examples:
  - {input: "How do I pin a model version?", output: "Set version: on the alias."}
  - {input: "How do fallbacks work?", output: "They are tried in order."}
  - {input: "如何配置缓存？", output: "在 cache: 下设置。"}
  - {input: "What does the semantic cache compare?", output: "Questions."}
  - messages:
      - {role: user, content: "Which store is the default?"}
      - {role: assistant, content: "SQLite."}
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def prompt_of(tmp_path, body, name="p.yaml"):
    return load_prompt_file(write(tmp_path / name, body))


# ---------------------------------------------------------------- examples


def test_examples_become_turns_before_the_question_and_change_the_version(tmp_path):
    plain = prompt_of(tmp_path, BASE, "a.yaml")
    shots = prompt_of(tmp_path, BASE + FIVE, "b.yaml")
    assert shots.version != plain.version and shots.warnings == ()
    msgs = shots.render(question="How do I pin?").messages()
    assert [m.role for m in msgs] == ["system"] + ["user", "assistant"] * 5 + ["user"]
    assert msgs[1].content == "How do I pin a model version?" and msgs[-1].content == "Q: How do I pin?"
    assert msgs[-2].content == "SQLite."


def test_fewer_than_five_examples_warn_with_file_and_line(tmp_path, caplog):
    body = BASE + "examples:\n  - {input: a, output: b}\n"
    path = write(tmp_path / "prompts" / "qa.yaml", body)
    prompt = load_prompt_file(path)
    assert len(prompt.warnings) == 1
    assert prompt.warnings[0].startswith(f"{path}:4: only 1 example(s)")
    assert "at least 5" not in caplog.text  # loading a file alone says nothing; the registry apps use logs it
    PromptRegistry(tmp_path).get("qa")
    assert f"{path}:4: only 1 example(s)" in caplog.text


def test_k_most_similar_examples_lexical_and_cjk_aware(tmp_path):
    prompt = prompt_of(tmp_path, BASE + FIVE + "shots: {k: 2, select: similar}\n")
    rendered = prompt.render(question="How do I pin the model version?")
    assert rendered.examples[-1] == 0  # the most similar example sits next to the question
    assert len(rendered.examples) == 2
    zh = prompt.render(question="缓存怎么配置")
    assert zh.examples[-1] == 2
    assert lexical_similarity("配置缓存", "如何配置缓存？") > lexical_similarity("配置缓存", "How do fallbacks work?")


def test_similarity_uses_an_embedder_when_given():
    class Axis:  # embeds each text onto one axis by a marker word: a fake model, deterministic
        def embed(self, texts):
            return np.array([[1.0, 0.0] if "alpha" in t else [0.0, 1.0] for t in texts], dtype=np.float32)

    examples = [Example(input="alpha one", output="1"), Example(input="beta two", output="2"),
                Example(input="beta three", output="3")]
    shots = Shots(k=1, select="similar")
    assert select_examples(examples, shots, "something alpha", embedder=Axis()) == [0]
    assert select_examples(examples, shots, "something beta", embedder=Axis()) == [1]


def test_shuffle_and_random_selection_are_deterministic_by_seed():
    examples = [Example(input=f"q{i}", output=f"a{i}") for i in range(8)]
    a = select_examples(examples, Shots(shuffle=True, seed=3))
    assert a == select_examples(examples, Shots(shuffle=True, seed=3))
    assert sorted(a) == list(range(8)) and a != list(range(8))
    assert a != select_examples(examples, Shots(shuffle=True, seed=4))
    r = select_examples(examples, Shots(k=3, select="random", seed=1))
    assert len(r) == 3 and r == select_examples(examples, Shots(k=3, select="random", seed=1))
    assert select_examples(examples, Shots(k=2)) == [0, 1]


@pytest.mark.parametrize("family,fmt,needle", [
    ("anthropic", "auto", '<example n="1">\n<input>\nHow do I pin a model version?\n</input>'),
    ("openai", "auto", "### Example 1\n**Input:** How do I pin a model version?"),
    ("openai", "xml", '<example n="5">\n<user>\nWhich store is the default?\n</user>'),
    ("anthropic", "json", '"input": "How do I pin a model version?"'),
])
def test_inline_examples_follow_the_structured_input_format(tmp_path, family, fmt, needle):
    body = "system: 'Examples:\n\n{{examples}}'\ntemplate: 'Sources: {{sources}} Q: {{question}}'\n" + FIVE
    body += f"format: {fmt}\n"
    rendered = prompt_of(tmp_path, body).render(question="x", family=family,
                                                sources=[SourceItem(1, 'He said "hi".', "a.md")])
    assert needle in rendered.system
    assert [m.role for m in rendered.messages()] == ["system", "user"]  # inline: no example turns
    if fmt == "json":
        sources = json.loads(rendered.user.removeprefix("Sources: ").split(" Q: ")[0])
        assert sources == [{"id": 1, "source": "a.md", "text": 'He said "hi".'}]
        assert rendered.style == "json"


def test_format_auto_is_todays_behaviour_and_explicit_format_overrides(tmp_path):
    auto = PromptRegistry(tmp_path).get("docs_qa")
    assert auto.render(sources=[SourceItem(1, "t", "s.md")], family="anthropic", question="q").style == "xml"
    assert auto.render(sources=[SourceItem(1, "t", "s.md")], family="qwen", question="q").style == "markdown"
    md = prompt_of(tmp_path, "template: '{{sources}}'\nformat: markdown\n")
    assert md.render(sources=[SourceItem(1, "t", "s.md")], family="anthropic").style == "markdown"


def test_builtin_and_legacy_files_keep_their_version(tmp_path):
    # Keys added later enter the hash only when set, so existing files (and their traces) keep their version.
    legacy = prompt_of(tmp_path, BASE)
    explicit = prompt_of(tmp_path, BASE + "format: auto\nreasoning: false\nprefill: ''\nexamples: []\n", "b.yaml")
    assert legacy.version == explicit.version == _legacy_version(legacy)
    builtin = load_prompt_file(builtin_dir() / "docs_qa.yaml")
    assert builtin.version == _legacy_version(builtin)


def _legacy_version(prompt):
    """The version formula before examples/prefill/reasoning/format existed."""
    body = {"system": prompt.system, "template": prompt.template, "sources": prompt.sources.model_dump(),
            "no_answer": prompt.no_answer}
    return content_hash(json.dumps(body, sort_keys=True, ensure_ascii=False), n=12)


@pytest.mark.parametrize("extra", ["prefill: '{'\n", "reasoning: true\n", "format: json\n", "reasoning: {tag: scratch}\n",
                                   FIVE + "shots: {k: 2}\n"])
def test_every_new_key_is_part_of_the_version(tmp_path, extra):
    assert prompt_of(tmp_path, BASE + extra, "b.yaml").version != prompt_of(tmp_path, BASE).version


# ---------------------------------------------------------------- prefill and reasoning


def test_prefill_is_a_trailing_assistant_turn_where_supported_and_put_back_on_the_answer(tmp_path):
    prompt = prompt_of(tmp_path, BASE + "prefill: '{\"answer\":'\n")
    sent = prompt.render(question="q", prefill=True)
    assert sent.messages()[-1].role == "assistant" and sent.messages()[-1].content == '{"answer":'
    assert sent.finish(' "yes"}') == '{"answer": "yes"}'
    assert sent.finish('{"answer": "yes"}') == '{"answer": "yes"}'  # a provider that echoes it
    assert prompt.render(question="q", family="anthropic").prefill_sent  # guessed from the family


def test_prefill_not_sent_to_providers_without_it_is_asked_for_in_the_user_turn(tmp_path):
    prompt = prompt_of(tmp_path, BASE + "prefill: 'Answer:'\n")
    rendered = prompt.render(question="q", family="openai")
    assert not rendered.prefill_sent and rendered.messages()[-1].role == "user"
    assert rendered.user.endswith("Begin your answer with exactly: Answer:")
    assert rendered.finish("Answer: 42") == "Answer: 42"


def test_reasoning_scaffold_asks_for_tags_and_is_stripped_from_the_answer(tmp_path):
    prompt = prompt_of(tmp_path, BASE + "reasoning: true\n")
    rendered = prompt.render(question="q")
    assert "<thinking></thinking>" in rendered.system and rendered.system.startswith("Be brief.")
    assert rendered.finish("<thinking>step 1\nstep 2</thinking>\n\nThe answer is 4.") == "The answer is 4."
    tagged = prompt_of(tmp_path, BASE + "reasoning: {tag: scratch}\nprefill: '<scratch>'\n", "b.yaml")
    sent = tagged.render(question="q", prefill=True)
    assert "<scratch></scratch>" in sent.system
    assert sent.finish("hmm</scratch>Four.") == "Four."
    assert tagged.strip_reasoning("<scratch>x</scratch>Four.") == "Four."


@pytest.mark.parametrize("text,answer,thought", [
    ("<thinking>a</thinking>B", "B", "a"),
    ("A <thinking>x</thinking> B <thinking>y</thinking>", "A  B", "x\n\ny"),
    ("<thinking>never closed", "", "never closed"),
    ("tail of prefill</thinking>Final", "Final", "tail of prefill"),
    ("<THINKING>a</THINKING>B", "B", "a"),
    ("No reasoning here.", "No reasoning here.", ""),
    ("<think>other tag</think>kept", "<think>other tag</think>kept", ""),
])
def test_strip_reasoning(text, answer, thought):
    assert split_reasoning(text) == (answer, thought)
    assert strip_reasoning(text) == answer


# ---------------------------------------------------------------- bad files


@pytest.mark.parametrize("body,line,message,hint", [
    (BASE + "exampels: []\n", 4, "unknown field `exampels` — did you mean `examples`?", "valid fields here"),
    (BASE + "examples:\n  - {input: a, output: b}\n  - {input: a, ouput: b}\n", 6,
     "unknown field `ouput` — did you mean `output`", "input, output, messages"),
    (BASE + "examples:\n  - {input: a}\n", 5, "needs both `input` and `output`", None),
    (BASE + "examples:\n  - input: a\n    output: b\n    messages: []\n", 5, "not both", None),
    (BASE + "examples:\n  - messages: [{role: system, content: x}]\n", 5, "examples.0.messages.0.role", None),
    (BASE + "format: yaml\n", 4, "`format`", "xml"),
    (BASE + "shots: {k: 0}\n", 4, "`shots.k`", None),
    (BASE + "shots: {select: best}\n", 4, "`shots.select`", None),
    (BASE + "reasoning: {tag: 'a b'}\n", 4, "`reasoning", None),
])
def test_malformed_prompt_files_name_file_line_and_choices(tmp_path, body, line, message, hint):
    path = write(tmp_path / "bad.yaml", body)
    with pytest.raises(UserError) as err:
        load_prompt_file(path)
    assert err.value.where == f"{path}:{line}"
    assert message in err.value.message
    if hint:
        assert hint in (err.value.hint or "") + err.value.message


# ---------------------------------------------------------------- diff


def test_word_diff_marks_changed_words_per_field(tmp_path):
    a = prompt_of(tmp_path, BASE, "a.yaml")
    b = prompt_of(tmp_path, BASE.replace("Be brief.", "Be very brief.") + "prefill: 'A:'\n", "b.yaml")
    changes = prompt_diff(a, b)
    assert set(changes) == {"system", "prefill"}
    assert render_word_diff(changes["system"]) == "Be{+ very+} brief."
    assert render_word_diff(word_diff("one two three", "one 2 three")) == "one [-two-]{+2+} three"
    assert prompt_diff(a, a) == {}


# ---------------------------------------------------------------- stored versions and labels


def test_versions_labels_rollback_and_load_by_label(tmp_path, store):
    versions = PromptVersions(store)
    path = write(tmp_path / "prompts" / "qa.yaml", BASE)
    v1 = load_prompt_file(path)
    assert versions.record(v1, now=1.0) is True
    assert versions.record(v1, now=2.0) is False  # one row per distinct version
    write(path, BASE.replace("brief", "concise"))
    v2 = load_prompt_file(path)
    versions.record(v2, now=3.0)
    assert [v.version for v in versions.versions("qa")] == [v2.version, v1.version]
    assert versions.get("qa", v1.version[:6]).version == v1.version  # a unique prefix

    assert versions.set_label("qa", v1.version, "production") == (None, v1.version)
    assert versions.set_label("qa", "production", "staging") == (None, v1.version)  # a label names a version
    assert versions.set_label("qa", v2.version, "production") == (v1.version, v2.version)
    assert versions.labels() == {"qa": {"production": v2.version, "staging": v1.version}}

    # The file has moved on (v2); production is pinned back to v1 and loads v1's stored content.
    assert versions.rollback("qa", "production") == (v2.version, v1.version)
    pinned = load_prompt("qa", label="production", store=store)
    assert pinned.version == v1.version and pinned.system == "Be brief." and pinned.label == "production"
    assert pinned.render(question="x").version == v1.version
    with pytest.raises(UserError, match="no earlier version"):
        versions.rollback("qa", "production")
    assert [e["action"] for e in versions.history("qa", "production")] == ["set", "set", "rollback"]
    stored = versions.versions("qa")[-1]
    assert stored.source_text == BASE and stored.path == str(path)


def test_load_by_label_with_examples_round_trips_the_version(tmp_path, store):
    prompt = prompt_of(tmp_path, BASE + FIVE + "shots: {k: 2, select: similar}\nreasoning: true\nprefill: '<thinking>'\n"
                       "format: xml\n")
    versions = PromptVersions(store)
    versions.record(prompt)
    versions.set_label("qa", prompt.version, "production")
    again = PromptRegistry(tmp_path, store=store).get("qa", label="production")
    assert again.version == prompt.version
    by_path = PromptRegistry(tmp_path, store=store).get("p.yaml", label="production")  # file p.yaml, `name: qa`
    assert by_path.version == prompt.version
    assert again.render(question="pin version").messages() == prompt.render(question="pin version").messages()


def test_unknown_label_version_and_prompt_list_the_choices(tmp_path, store):
    versions = PromptVersions(store)
    prompt = prompt_of(tmp_path, BASE)
    versions.record(prompt)
    versions.set_label("qa", prompt.version, "production")
    with pytest.raises(UserError) as err:
        load_prompt("qa", label="prodution", store=store)
    assert err.value.message == ("prompt 'qa' has no label 'prodution' — did you mean 'production'? "
                                 "(known labels: production)")
    assert err.value.exit_code == 2
    with pytest.raises(UserError, match=r"prompt 'qa' has no version 'ffffffff' \(known versions: "):
        versions.get("qa", "ffffffff")
    with pytest.raises(UserError, match="no stored versions"):
        versions.load("nope", version="abcd")
    with pytest.raises(UserError, match="invalid label"):
        versions.set_label("qa", prompt.version, "bad label")
    with pytest.raises(UserError, match="needs the store"):
        load_prompt("qa", label="production")
    with pytest.raises(UserError, match="did you mean 'docs_qa'"):
        PromptRegistry(tmp_path).get("docs_q", where="flywheel.yaml:7")


def test_registry_with_a_store_records_each_version_it_loads(tmp_path, store):
    registry = PromptRegistry(tmp_path, store=store)
    registry.get("docs_qa")
    registry.get("docs_qa")
    path = write(tmp_path / "prompts" / "docs_qa.yaml", "template: '{{sources}} {{question}}'\n")
    registry.get("docs_qa")
    stored = PromptVersions(store).versions("docs_qa")
    assert len(stored) == 2 and stored[0].path == str(path)


def test_a_prompt_holding_a_secret_is_not_stored(tmp_path, store):
    prompt = prompt_of(tmp_path, BASE.replace("Be brief.", "Use key sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"))
    with pytest.raises(UserError, match="secret"):
        PromptVersions(store).record(prompt)
    assert PromptVersions(store).versions() == []


def test_schema_matches_the_migration(store_url):
    from flywheel.store import Store
    from flywheel.store.db import schema_diff

    with Store.open(store_url) as store:
        assert schema_diff(store, ["prompt_versions", "prompt_labels"]) == []
        prompt = load_prompt(builtin_dir() / "docs_qa.yaml")
        versions = PromptVersions(store)
        assert versions.record(prompt) and not versions.record(prompt)
        versions.set_label("docs_qa", prompt.version[:5], "production")
        assert versions.load("docs_qa", label="production").version == prompt.version


# ---------------------------------------------------------------- through the gateway


def test_prefill_reasoning_and_examples_through_the_anthropic_provider(tmp_path, llm):
    from flywheel.config import ModelAlias
    from flywheel.gateway import Gateway
    from flywheel.prompts import family_of, supports_prefill
    from flywheel.types import ChatRequest

    gateway = Gateway({"claude": ModelAlias(provider="anthropic", model="claude-test", base_url=llm.anthropic_base_url,
                                            params={"max_tokens": 100}, max_retries=0),
                       "gpt": ModelAlias(provider="openai_compat", model="gpt-test", base_url=llm.base_url,
                                         max_retries=0)})
    llm.add("Which store", "2 + 2 is 4.</thinking>\n\nFour.")
    prompt = prompt_of(tmp_path, BASE + FIVE + "shots: {k: 1, select: similar}\nreasoning: true\n"
                       "prefill: '<thinking>'\n")
    claude = gateway.resolve("claude")
    assert supports_prefill(claude) and not supports_prefill(gateway.resolve("gpt"))
    rendered = prompt.render(question="Which store do I get?", family=family_of(claude), prefill=supports_prefill(claude))
    result = gateway.chat(ChatRequest(messages=rendered.messages(), model="claude"))
    body = llm.requests[-1]
    assert body["path"] == "/v1/messages" and body["system"].startswith("Be brief.")
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "assistant"]
    assert body["messages"][-1]["content"] == "<thinking>"  # the prefill the model continues
    assert rendered.finish(result.text) == "Four."
