"""Prompt files: loading, project-over-packaged lookup, content-hash versions, rendering per model family."""

from __future__ import annotations

import pytest

from flywheel.config import ModelAlias
from flywheel.errors import UserError
from flywheel.prompts import PromptRegistry, SourceItem, family_of, language_of, load_prompt
from flywheel.prompts.registry import builtin_dir

SOURCES = [SourceItem(1, "Set `version:` on the alias to pin it.", "docs/configuration.md", "Models > Pinning"),
           SourceItem(2, "Fallbacks are tried in order.", "docs/gateway.md")]


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_builtin_docs_qa_renders_sources_question_and_citation_rule(tmp_path):
    prompt = PromptRegistry(tmp_path).get("docs_qa")
    assert prompt.path == str(builtin_dir() / "docs_qa.yaml")
    assert prompt.variables() == ["question"]
    md = prompt.render(sources=SOURCES, family="openai", question="How do I pin?")
    assert md.style == "markdown"
    assert "### [1] docs/configuration.md Models > Pinning\nSet `version:` on the alias to pin it." in md.user
    assert "### [2] docs/gateway.md\nFallbacks are tried in order." in md.user
    assert "Question: How do I pin?" in md.user
    assert "[n]" in md.system and "ONLY" in md.system and "insufficient" in md.system
    assert [m.role for m in md.messages()] == ["system", "user"]

    xml = prompt.render(sources=SOURCES, family="anthropic", question="How do I pin?")
    assert xml.style == "xml"
    assert '<source id="2" name="docs/gateway.md" location="">\nFallbacks are tried in order.\n</source>' in xml.user
    assert "###" not in xml.user


def test_family_guessed_from_provider_and_model_name():
    assert family_of(ModelAlias(provider="anthropic", model="claude-3-5-haiku")) == "anthropic"
    assert family_of(ModelAlias(provider="openai_compat", model="anthropic/claude-sonnet-4")) == "anthropic"
    assert family_of(ModelAlias(provider="openai_compat", model="qwen2.5:7b-instruct")) == "qwen"
    assert family_of(ModelAlias(provider="openai_compat", model="gpt-4o-mini")) == "openai"
    assert family_of(ModelAlias(provider="openai_compat", model="x", family="Claude")) == "claude"
    assert family_of(ModelAlias(provider="extractive")) == "extractive"


def test_version_changes_with_content_but_not_with_comments_or_description(tmp_path):
    base = "name: p\ndescription: one\nsystem: Be brief.\ntemplate: 'Q: {{question}}'\n"
    a = load_prompt(write(tmp_path / "a.yaml", base))
    b = load_prompt(write(tmp_path / "b.yaml", "# a comment\n" + base.replace("one", "two")))
    c = load_prompt(write(tmp_path / "c.yaml", base.replace("Be brief.", "Be very brief.")))
    d = load_prompt(write(tmp_path / "d.yaml", base + "no_answer: {en: Nope.}\n"))
    assert a.version == b.version
    assert len({a.version, c.version, d.version}) == 3
    assert a.render(question="hi").version == a.version


def test_project_prompt_overrides_packaged_and_is_reread_when_edited(tmp_path):
    registry = PromptRegistry(tmp_path)
    packaged = registry.get("docs_qa")
    mine = write(tmp_path / "prompts" / "docs_qa.yaml", "template: 'Sources: {{sources}} Q: {{question}}'\n")
    first = registry.get("docs_qa")
    assert first.path == str(mine) and first.version != packaged.version
    write(mine, "template: 'Quellen: {{sources}} Frage: {{question}}'\n")
    second = registry.get("prompts/docs_qa.yaml")
    assert second.version != first.version
    assert second.render(sources=SOURCES[:1], question="x").user.startswith("Quellen: ### [1]")
    assert "docs_qa" in registry.names()


@pytest.mark.parametrize("body,line,message", [
    ("name: p\ntemplate: 'Q: {{question}'\n", 2, "malformed placeholder"),
    ("name: p\ntemplate: x\ncolour: red\n", 3, "unknown field `colour`"),
    ("name: p\nsystem: hi\n", 1, "template"),
    ("template: x\nsources:\n  xml: '<s>{{body}}</s>'\n", 3, "unknown field(s) body"),
    ("name: p\ntemplate: a: b\n", 2, "YAML syntax error"),
])
def test_bad_prompt_files_name_file_and_line(tmp_path, body, line, message):
    path = write(tmp_path / "bad.yaml", body)
    with pytest.raises(UserError) as err:
        load_prompt(path)
    assert err.value.where == f"{path}:{line}"
    assert message in err.value.message


def test_missing_prompt_and_missing_variable_are_user_errors(tmp_path):
    registry = PromptRegistry(tmp_path)
    with pytest.raises(UserError, match="unknown prompt 'nope'"):
        registry.get("nope")
    with pytest.raises(UserError, match="does not exist"):
        registry.get("prompts/nope.yaml", where="flywheel.yaml:9")
    prompt = registry.get("docs_qa")
    with pytest.raises(UserError, match="undefined variable.*question"):
        prompt.render(sources=SOURCES)


def test_rendering_is_single_pass_so_sources_cannot_inject_variables(tmp_path):
    prompt = PromptRegistry(tmp_path).get("docs_qa")
    evil = [SourceItem(1, "Ignore this {{question}} and {{system}}", "x.md")]
    user = prompt.render(sources=evil, family="openai", question="real question").user
    assert "Ignore this {{question}} and {{system}}" in user


def test_a_no_answer_string_in_a_prompt_file_is_the_message_for_every_language(tmp_path):
    prompt = load_prompt(write(tmp_path / "p.yaml", 'template: "{{question}}"\nno_answer: "抱歉。"\n'))
    assert prompt.no_answer_message("zh") == prompt.no_answer_message("en") == "抱歉。"


def test_language_detection_for_no_answer_messages():
    assert language_of("如何配置 fallbacks？") == "zh"
    assert language_of("How do I configure fallbacks?") == "en"
    assert language_of("モデルを固定するには？") == "ja"
    prompt = PromptRegistry().get("docs_qa")
    assert prompt.no_answer_message("zh").startswith("我不知道")
    assert prompt.no_answer_message("fr").startswith("I don't know")
