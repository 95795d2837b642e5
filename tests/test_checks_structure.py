"""Structure checks: is-json (with JSON Schema), contains-json, is-xml."""

from __future__ import annotations

import pytest

from flywheel.checks import build
from flywheel.errors import UserError

SCHEMA = {
    "type": "object",
    "required": ["answer", "sources"],
    "properties": {"answer": {"type": "string"}, "sources": {"type": "array", "items": {"type": "integer"}}},
}


def test_is_json_with_and_without_schema() -> None:
    assert build("is-json").run('{"a": 1}').passed
    assert not build("is-json").run("{'a': 1}").passed
    assert build("is-json", SCHEMA).run('{"answer": "x", "sources": [1, 2]}').passed
    bad = build("is-json", {"schema": SCHEMA}).run('{"answer": "x", "sources": ["one"]}')
    assert not bad.passed and "sources/0" in bad.reason
    missing = build("is-json", SCHEMA).run('{"answer": "x"}')
    assert not missing.passed and "sources" in missing.reason
    assert build("not-is-json").run("plain text").passed


def test_contains_json_finds_fenced_or_inline_json() -> None:
    text = 'Here you go:\n```json\n{"answer": "x", "sources": [3]}\n```\nThanks.'
    assert build("contains-json", SCHEMA).run(text).passed
    assert build("contains-json").run('The result is {"ok": true} as shown.').passed
    assert not build("contains-json").run("no braces here").passed
    assert not build("contains-json", SCHEMA).run('see {"answer": 1}').passed


def test_invalid_schema_is_a_user_error() -> None:
    with pytest.raises(UserError) as err:
        build("is-json", {"type": "no-such-type"}, where="s.yaml:4")
    assert "JSON Schema" in err.value.message and err.value.where == "s.yaml:4"
    with pytest.raises(UserError):
        build("is-json", "not a schema")


def test_is_xml_and_required_elements() -> None:
    xml = "<answer><text>Hi</text><source id='1'/></answer>"
    assert build("is-xml").run(xml).passed
    assert not build("is-xml").run("<answer><text>Hi</answer>").passed
    assert build("is-xml", ["answer/text", "source"]).run(xml).passed
    r = build("is-xml", ["answer/missing"]).run(xml)
    assert not r.passed and r.details["missing"] == ["answer/missing"]
    assert build("not-is-xml").run("plain").passed
    with pytest.raises(UserError):
        build("is-xml", [1, 2])
