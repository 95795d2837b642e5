"""Text checks: substrings, equality, prefix, regex, counts; negation, spec stability, argument errors."""

from __future__ import annotations

import pytest

from flywheel.checks import CheckContext, build, from_entry, registered
from flywheel.checks.text import count_sentences, count_words
from flywheel.errors import UserError

OUT = "Set `version:` on the model alias in flywheel.yaml. It pins the model."


@pytest.mark.parametrize(
    "entry, passed",
    [
        ({"contains": "version"}, True),
        ({"contains": "Version"}, False),
        ({"icontains": "VERSION"}, True),
        ({"contains-any": ["nope", "alias"]}, True),
        ({"contains-any": ["nope", "never"]}, False),
        ({"icontains-any": ["NOPE", "ALIAS"]}, True),
        ({"contains-all": ["version", "alias"]}, True),
        ({"contains-all": ["version", "nope"]}, False),
        ({"icontains-all": ["VERSION", "FLYWHEEL.YAML"]}, True),
        ({"starts-with": "Set"}, True),
        ({"starts-with": "It"}, False),
        ({"regex": r"flywheel\.ya?ml"}, True),
        ({"regex": {"pattern": "SET", "flags": "i"}}, True),
        ({"regex": "^It"}, False),
        ({"max_words": 20}, True),
        ({"max_words": 5}, False),
        ({"min_words": 5}, True),
        ({"words": {"min": 5, "max": 20}}, True),
        ({"words": {"max": 3}}, False),
        ({"max_sentences": 2}, True),
        ({"min_sentences": 3}, False),
        ({"sentences": {"min": 2, "max": 2}}, True),
        ({"max_chars": 10}, False),
        ({"chars": {"min": 10, "max": 200}}, True),
    ],
)
def test_text_checks_and_their_negation(entry: dict, passed: bool) -> None:
    result = from_entry(entry).run(OUT)
    assert result.passed is passed, result.reason
    ((name, arg),) = entry.items()
    negated = build(f"not-{name}", arg).run(OUT)
    assert negated.passed is (not passed)
    assert negated.name == f"not-{name}"


def test_equals_trims_whitespace_and_compares_structures_as_json() -> None:
    assert build("equals", "42").run("  42\n").passed
    assert not build("equals", "42").run("420").passed
    assert build("equals", {"a": [1, 2]}).run('{"a": [1, 2]}').passed
    assert not build("equals", {"a": 1}).run("not json").passed


def test_counts_treat_each_cjk_character_as_a_word() -> None:
    assert count_words("在 flywheel.yaml 中设置版本") == 2 + 6  # flywheel, yaml + 6 Han characters
    assert count_words("don't stop") == 2
    assert count_sentences("第一句。第二句！Third one? Fourth.") == 4
    assert build("max_words", 5).run("这是一个很长的句子").passed is False


def test_count_score_is_graded_when_out_of_range() -> None:
    r = build("max_words", 5).run("one two three four five six seven eight nine ten")
    assert not r.passed and r.score == pytest.approx(0.5)
    assert r.details["count"] == 10


def test_spec_is_stable_and_tied_to_the_definition() -> None:
    a, b = build("contains", "x"), build("contains", "x")
    assert a.spec() == b.spec() and len(a.spec()) == 16
    assert build("contains", "y").spec() != a.spec()
    assert build("icontains", "x").spec() != a.spec()
    assert build("not-contains", "x").spec() != a.spec()
    assert a.run("x").spec == a.spec()
    # the same check written two ways in YAML is the same check
    assert from_entry({"contains": "x"}).spec() == from_entry({"check": "contains", "value": "x"}).spec()


def test_unknown_check_lists_the_valid_choices() -> None:
    with pytest.raises(UserError) as err:
        from_entry({"contians": "x"}, where="evals/a.yaml:7")
    assert err.value.where == "evals/a.yaml:7"
    assert "did you mean 'contains'" in err.value.message and "not-" in err.value.hint


@pytest.mark.parametrize(
    "name, arg",
    [
        ("contains", None),
        ("contains", ["a"]),
        ("contains-any", []),
        ("contains-all", "abc"),
        ("regex", "(unclosed"),
        ("regex", {"pattern": "x", "flags": "q"}),
        ("max_words", -1),
        ("max_words", 2.5),
        ("words", {"min": 5, "max": 2}),
        ("words", 3),
        ("chars", {"most": 3}),
        ("equals", None),
    ],
)
def test_bad_arguments_are_user_errors(name: str, arg: object) -> None:
    with pytest.raises(UserError) as err:
        build(name, arg, where="s.yaml:3")
    assert err.value.where == "s.yaml:3"
    assert name in err.value.message


def test_every_builtin_family_is_registered() -> None:
    names = registered()
    for name in (
        "contains",
        "icontains",
        "contains-any",
        "contains-all",
        "equals",
        "starts-with",
        "regex",
        "max_words",
        "min_words",
        "words",
        "max_sentences",
        "sentences",
        "max_chars",
        "chars",
        "is-json",
        "contains-json",
        "is-xml",
        "language",
        "latency",
        "cost",
        "similar",
        "judge",
        "agrees-with-reference",
    ):
        assert name in names, name


def test_none_output_is_checked_as_empty_text() -> None:
    assert build("max_chars", 0).run(None, CheckContext()).passed
