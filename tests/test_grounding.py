"""The grounding check: cited [n] must exist, quotes must occur in the source they cite."""

from __future__ import annotations

import pytest

from flywheel.checks import CheckContext, build, from_entry
from flywheel.errors import UserError

SOURCES = [
    "To pin a model version, set `version:` on the alias;\nevery result records the pinned version.",
    "Fallbacks are tried in order when every retry failed.",
    "flywheel 默认完全\n离线运行，使用内置的抽取式模型。",
]
CTX = CheckContext(input="q", sources=SOURCES)


def run(output, arg=None, ctx=CTX):
    return build("grounding", arg).run(output, ctx)


def test_verified_citations_and_quotes_pass():
    out = ('“To pin a model version, set `version:` on the alias; every result records the pinned version.” [1] '
           'And "fallbacks are tried in order" [2]. 据资料，「flywheel 默认完全离线运行」[3]')
    r = run(out)
    assert r.passed and r.score == 1.0
    assert r.details["citations"] == [1, 2, 3]
    assert [q["found_in"] for q in r.details["quotes"]] == [[1], [2], [3]]


def test_fake_citation_fails_and_is_named():
    r = run("Pin it with `version:` [1]. Costs are in dollars [7].")
    assert not r.passed
    assert r.score == pytest.approx(0.5)
    assert "[7] cites a source that was not in the context" in r.reason


def test_misquote_fails_even_when_the_citation_exists():
    r = run('The docs say "set `pinned:` on the alias to pin it" [1].')
    assert not r.passed
    assert "does not occur in [1]" in r.reason and "pinned:" in r.reason


def test_quote_attributed_to_the_wrong_source_fails():
    r = run('"Fallbacks are tried in order" [1]')
    assert not r.passed and r.details["quotes"][0]["found_in"] == []


def test_ellipsis_and_whitespace_and_case_are_tolerated():
    assert run('"to pin a model version … records the pinned version." [1]').passed
    assert run('"Fallbacks   are tried\nin order" [2]').passed


def test_uncited_quote_must_occur_in_some_source():
    assert run('As documented: "every result records the pinned version".').passed
    r = run('As documented: "every result is signed by the vendor".')
    assert not r.passed and "in any source" in r.reason


def test_short_quoted_terms_are_not_quotations():
    r = run('Set "version" on the alias [1].')
    assert r.passed and r.details["quotes"] == []


def test_nothing_to_verify_passes_unless_citations_are_required():
    assert run("I don't know.").passed
    strict = run("I don't know.", {"require_citations": True})
    assert not strict.passed and strict.reason == "the answer cites no source"


def test_no_sources_means_every_citation_is_unsupported():
    r = run("It is configurable [1].", ctx=CheckContext(sources=[]))
    assert not r.passed and r.score == 0.0


def test_min_score_threshold_and_negation():
    out = "Pin it [1]; it is free [9]."
    assert run(out, {"min_score": 0.5}).passed
    assert build("not-grounding").run(out, CTX).passed


def test_bad_arguments_are_user_errors_with_location():
    with pytest.raises(UserError, match="unknown option"):
        from_entry({"grounding": {"strict": True}}, where="evals/x.yaml:4")
    with pytest.raises(UserError, match="grounding takes a mapping"):
        build("grounding", "yes")
    assert build("grounding").spec() != build("grounding", {"require_citations": True}).spec()
