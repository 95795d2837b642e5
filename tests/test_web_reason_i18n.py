"""Check reasons and agreement reasons in Chinese (flywheel.web.reason_i18n): the reasons are made by the real
checks and the real agreement report, so a check that rewords its reason without a matching pattern fails here."""

from __future__ import annotations

import re

import pytest

from flywheel.checks import CheckContext, build
from flywheel.feedback.agreement import agreement_report
from flywheel.web import i18n, reason_i18n

_ENGLISH_WORDS = re.compile(r"\b(?!PII\b|JSON\b|XML\b|ROUGE\b|BLEU\b|PASS\b|FAIL\b)[A-Za-z]{3,}\b")


def _reason(name: str, arg, output: str, **ctx) -> str:
    result = build(name, arg).run(output, CheckContext(**ctx))
    assert result.reason, (name, result)
    return result.reason


# (check, arg, output, context, values the Chinese text must keep)
CASES = [
    ("contains", "flywheel", "flywheel answers", {}, ["'flywheel'"]),
    ("contains", "version", "no such word", {}, ["'version'"]),
    ("not-contains", "model", "the model", {}, ["'model'"]),
    ("contains-all", ["a", "zz"], "a b", {}, ["['a']", "['zz']"]),
    ("contains-any", ["xx", "yy"], "a b", {}, ["['xx', 'yy']"]),
    ("equals", "yes", "no", {}, ["'yes'", "'no'"]),
    ("equals", "yes", "yes", {}, []),
    ("starts-with", "根据", "答案", {}, ["'根据'"]),
    ("regex", "^不可能", "答案", {}, ["/^不可能/"]),
    ("regex", "[0-9]+", "共 42 个", {}, ["'42'"]),
    ("max_words", 5, "one two three four five six seven", {}, ["7", "..5"]),
    ("min_sentences", 3, "一句话。", {}, ["..", "1"]),
    ("max_chars", 100, "short", {}, ["5", "..100"]),
    ("levenshtein", {"value": "abc", "max": 1}, "xyz", {}, ["3"]),
    ("rouge-n", {"value": "the cat sat", "threshold": 0.9}, "a dog ran", {}, ["ROUGE-1"]),
    ("grounding", {}, "It takes 5 days [1].", {"sources": ["Refunds take 5 days."]}, []),
    ("grounding", {}, "It takes 5 days [3].", {"sources": ["Refunds take 5 days."]}, ["[3]"]),
    ("grounding", {}, "They said “refunds are instant and free” [1].", {"sources": ["Refunds take 5 days."]},
     ["“refunds are instant and free”", "[1]"]),
    ("grounding", {"require_citations": True}, "No citation here.", {"sources": ["x"]}, []),
    ("pii", None, "mail me at ann@example.com", {}, ["EMAIL_ADDRESS"]),
    ("pii", None, "nothing personal", {}, []),
    ("contains-json", None, "no braces here", {}, []),
    ("is-json", None, '{"a": 1}', {}, []),
    ("latency", 100, "x", {"latency_ms": 250.0}, ["250", "100"]),
    ("latency", 100, "x", {}, []),
    ("language", "zh", "This answer is in English, clearly.", {}, ["en", "zh"]),
]


@pytest.mark.parametrize(("name", "arg", "output", "ctx", "kept"), CASES)
def test_check_reasons_in_chinese(name, arg, output, ctx, kept):
    reason = _reason(name, arg, output, **ctx)
    shown = reason_i18n.reason_text("zh", reason)
    values = re.compile(r"'[^']*'|\[[^\]]*\]|“[^”]*”|/[^/]*/")
    if _ENGLISH_WORDS.search(values.sub(" ", reason)):  # `250 ms > 100 ms`, `ROUGE-1 0.000 < 0.9`: nothing to say
        assert re.search(r"[\u4e00-\u9fff]", shown), (reason, shown)
    left = [w for w in _ENGLISH_WORDS.findall(values.sub(" ", shown)) if w not in ("EMAIL_ADDRESS", "en", "zh")]
    assert left == [], (reason, shown)
    for value in kept:
        assert value in shown, (reason, shown)
    assert reason_i18n.reason_text("en", reason) == reason


def test_agreement_reasons_in_chinese():
    few = agreement_report([("i1", "ana", "pass"), ("i1", "bo", "fail")], n_boot=0)
    same = agreement_report([(f"i{k}", who, "pass") for k in range(3) for who in ("ana", "bo")], n_boot=0)
    reasons = [*few["reasons"].values(), *same["reasons"].values(),
               *(p["reason"] for r in (few, same) for p in r["pairs"] if p.get("reason"))]
    assert len(reasons) >= 4
    for reason in reasons:
        shown = reason_i18n.reason_text("zh", reason)
        assert re.search(r"[\u4e00-\u9fff]", shown) and not re.search(r"[A-Za-z]{3,}", shown), (reason, shown)


def test_unknown_text_and_the_judges_own_words_stay_as_they_are():
    for text in ("The answer names the version key.", "check crashed: ValueError: boom", "", None):
        shown = reason_i18n.reason_text("zh", text)
        assert shown == (text or "") or shown.startswith("检查出错：ValueError: boom")
    assert reason_i18n.reason_text("zh", "judge says fail") == "评审判定：不通过"
    assert reason_i18n.reason_text("zh", "negated: negated: found 'x'") == "取反：取反：找到 'x'"


def test_every_reason_key_has_both_languages_and_a_pattern():
    assert set(reason_i18n.EN) == set(reason_i18n.ZH) == {key for _, key, _ in reason_i18n.PATTERNS}
    # the English table is the core's wording: a reason rebuilt from it reads the same
    assert reason_i18n.EN["count"].format(n=7, unit="words", side="outside", span="..5") == "7 words (outside ..5)"


def test_display_labels_of_guard_actions_and_feedback():
    from flywheel.config import GUARD_ACTIONS

    zh, en = i18n.Translator("zh"), i18n.Translator("en")
    for action in (*GUARD_ACTIONS, "pass"):
        assert en.label("guard", action) == action
        assert re.search(r"[\u4e00-\u9fff]", zh.label("guard", action)), action
    assert zh.label("fbvalue", "down") == "踩" and en.label("fbvalue", "down") == "down"
    assert zh.label("fbsource", "annotator") == "标注人" and zh.label("fbsource", "robot") == "robot"
