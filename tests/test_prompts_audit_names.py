"""Prompt audit: what new users get wrong in prompt files and `flywheel prompts`, answered with file:line and the
fix — names that read as paths or differ by a space, an empty template, a bad reasoning tag, a `shots.query`
typo, a too-short version prefix, a secret in one of several files — and names in Chinese or with spaces that
work end to end (register, label, load by label)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import flywheel.cli.prompts  # noqa: F401 - registers the `prompts` group
from flywheel.cli import main
from flywheel.errors import UserError
from flywheel.prompts import load_prompt
from flywheel.prompts.registry import load_prompt_file
from flywheel.prompts.versions import PromptVersions

TEMPLATE = "template: 'Q: {{question}}'\n"


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def run(project, *args, code=0):
    result = CliRunner().invoke(main, ["--project", str(project), "prompts", *args])
    assert result.exit_code == code, result.output
    return result


@pytest.mark.parametrize(("name", "says"), [
    ("' qa '", "leading or trailing spaces"),    # listed as 'qa', stored as ' qa ': every lookup failed
    ("a/b", "reads as a file path"),              # `prompt: a/b` in an app is a path, never this name
    ("'a\\\\b'", "reads as a file path"),
    ("qa.yaml", "reads as a file path"),
    ('"a\\tb"', "control character"),
    ("x" * 201, "at most 200"),                   # the store's column
])
def test_names_that_cannot_be_looked_up_are_file_line_errors(tmp_path, name, says):
    path = write(tmp_path / "p.yaml", f"name: {name}\n{TEMPLATE}")
    with pytest.raises(UserError) as err:
        load_prompt_file(path)
    assert err.value.where == f"{path}:1" and "`name`" in err.value.message and says in err.value.message


def test_a_blank_name_is_the_file_name(tmp_path):
    assert load_prompt_file(write(tmp_path / "support.yaml", f"name: '  '\n{TEMPLATE}")).name == "support"


def test_an_empty_template_is_an_error_at_its_line(tmp_path):
    path = write(tmp_path / "p.yaml", "name: p\nsystem: Be brief.\ntemplate: '  '\n")
    with pytest.raises(UserError) as err:
        load_prompt_file(path)
    assert err.value.where == f"{path}:3" and "`template` is empty" in err.value.message


def test_a_bad_reasoning_tag_says_what_a_tag_is(tmp_path):
    path = write(tmp_path / "p.yaml", f"{TEMPLATE}reasoning: {{tag: 'a b'}}\n")
    with pytest.raises(UserError) as err:
        load_prompt_file(path)
    message = err.value.message
    assert "reasoning.bool" not in message and "starts with a letter" in message and "'a b'" in message


def test_a_shots_query_typo_is_an_error_not_the_first_examples(tmp_path):
    examples = "".join(f"  - {{input: 'q{i}', output: 'a{i}'}}\n" for i in range(5))
    path = write(tmp_path / "p.yaml", f"{TEMPLATE}examples:\n{examples}shots: {{k: 2, select: similar, query: questoin}}\n")
    with pytest.raises(UserError) as err:
        load_prompt_file(path).render(question="q3")
    assert "questoin" in err.value.message and "question" in (err.value.hint or "")
    fixed = write(tmp_path / "p.yaml", path.read_text(encoding="utf-8").replace("questoin", "question"))
    assert load_prompt_file(fixed).render(question="q3").examples[-1] == 3


@pytest.mark.parametrize("name", ["客服", "support bot", "サポート"])
def test_chinese_and_spaced_names_register_label_and_load(tmp_path, store, name):
    examples = "".join(f"  - {{input: '如何配置{w}？', output: '在 {w} 下设置。'}}\n"
                       for w in ("缓存", "模型", "护栏", "存储", "检索"))
    write(tmp_path / "prompts" / "p.yaml", f"name: {name}\n{TEMPLATE}examples:\n{examples}shots: {{k: 1, select: similar}}\n")
    project = tmp_path
    write(project / "flywheel.yaml", f"store: sqlite:///{tmp_path / 'flywheel.db'}\n")
    run(project, "label", name, "file", "--as", "production")
    rows = json.loads(run(project, "list", "--json").stdout)
    (row,) = [r for r in rows if r["name"] == name]
    assert row["labels"] == {"production": row["version"]}
    pinned = load_prompt(name, label="production", store=store)
    assert pinned.version == row["version"]
    assert pinned.render(question="怎么配置护栏？").examples == (2,)  # the most similar Chinese example


def test_a_short_version_prefix_says_how_long_one_must_be(tmp_path, store):
    prompt = load_prompt_file(write(tmp_path / "qa.yaml", f"name: qa\n{TEMPLATE}"))
    versions = PromptVersions(store)
    versions.record(prompt)
    for call in (lambda: versions.resolve("qa", prompt.version[:3]), lambda: versions.get("qa", prompt.version[:3])):
        with pytest.raises(UserError) as err:
            call()
        assert "at least 4 characters" in (err.value.hint or "")
    with pytest.raises(UserError) as err:
        versions.resolve("qa", "zzzz")
    assert "(known versions and labels: " in err.value.message


def test_a_secret_in_one_file_stores_none_of_them(tmp_path):
    write(tmp_path / "prompts" / "a_first.yaml", f"name: a_first\n{TEMPLATE}")
    write(tmp_path / "prompts" / "leaky.yaml",
          "name: leaky\ntemplate: 'key sk-proj-abcdefghijklmnopqrstuvwxyz0123456789ABCD {{question}}'\n")
    result = run(tmp_path, "register", code=2)
    assert "looks like it contains a secret" in result.output
    names = [r["name"] for r in json.loads(run(tmp_path, "list", "--json").stdout) if r["versions"]]
    assert names == []


def test_setting_a_label_to_where_it_points_is_no_move_for_rollback(tmp_path, store):
    versions = PromptVersions(store)
    v1 = load_prompt_file(write(tmp_path / "qa.yaml", f"name: qa\nsystem: One.\n{TEMPLATE}"))
    v2 = load_prompt_file(write(tmp_path / "qa.yaml", f"name: qa\nsystem: Two.\n{TEMPLATE}"))
    for prompt in (v1, v2):
        versions.record(prompt)
    versions.set_label("qa", v1.version, "production")
    versions.set_label("qa", v2.version, "production")
    assert versions.set_label("qa", v2.version, "production") == (v2.version, v2.version)  # a deploy run twice
    assert versions.rollback("qa", "production") == (v2.version, v1.version)


def test_a_misspelt_variable_names_the_closest_one_given(tmp_path):
    prompt = load_prompt_file(write(tmp_path / "p.yaml", "template: '{{sources}} Q: {{qustion}}'\n"))
    with pytest.raises(UserError) as err:
        prompt.render(question="How?")
    assert "undefined variable(s): qustion — did you mean question?" in err.value.message


def test_two_files_declaring_one_name_are_named_not_picked_silently(tmp_path):
    from flywheel.prompts import PromptRegistry

    write(tmp_path / "prompts" / "a.yaml", f"name: shared\n{TEMPLATE}")
    write(tmp_path / "prompts" / "b.yaml", f"name: shared\nsystem: Other.\n{TEMPLATE}")
    with pytest.raises(UserError) as err:
        PromptRegistry(tmp_path).get("shared", where="flywheel.yaml:9")
    assert err.value.where == "flywheel.yaml:9" and "a.yaml" in err.value.message and "b.yaml" in err.value.message
    assert PromptRegistry(tmp_path).get("prompts/b.yaml").system == "Other."  # by path it is unambiguous


def test_a_project_file_declaring_a_packaged_name_overrides_the_packaged_prompt(tmp_path):
    # A copy of the packaged rerank prompt, kept under another file name: the project's prompts come first.
    from flywheel.prompts import PromptRegistry

    write(tmp_path / "prompts" / "my_rerank.yaml", f"name: rerank\nsystem: Ours.\n{TEMPLATE}")
    prompt = PromptRegistry(tmp_path).get("rerank")
    assert prompt.system == "Ours." and prompt.path.endswith("my_rerank.yaml")
