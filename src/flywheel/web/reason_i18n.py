"""Reasons the core words in English, shown in the page's language: an eval result's check reasons (flywheel.checks:
`found 'x'`, `81 words (outside ..5)`, `negated: …`, grounding's failures …) and why an agreement statistic is
undefined (flywheel.feedback.agreement).

Stored results keep their English reasons (the CLI, reports and the `.json` twins show them); the dashboard
recognises the templates that build them and shows the Chinese text with the same values (quoted needles, numbers,
patterns, entity names). A judge's own reasoning, a crash's exception text and anything nobody mapped are shown
as they are.

    reason_text("zh", "81 words (outside ..5)")       # -> "81 个词（超出 ..5）"
    reason_text("zh", "negated: found 'model'")       # -> "取反：找到 'model'"

Templates use it as a filter (flywheel.web.render): `{{ c.reason|reason_text(lang) }}`.
Add a reason: a pattern in PATTERNS (named groups are the values) and its key in EN and ZH.
"""

from __future__ import annotations

import re

from flywheel.web import message_i18n

_Q = r"(?:'[^']*'|\"[^\"]*\")"
_CMP = r"(?P<cmp>[≤≥<>])"
_N = r"[-+0-9.e]+"

# (source exception type — always `object` here —, key, pattern); tried in order, the first full match wins
PATTERNS: list[tuple[type, str, str]] = [
    # flywheel.checks.base: the `not-` prefix and a check that raised
    (object, "negated", r"negated: (?P<inner>.+)"),
    (object, "crashed", r"check crashed: (?P<exc>.+)"),
    # flywheel.checks.text
    (object, "found", rf"found (?P<needle>{_Q})"),
    (object, "not_found", rf"did not find (?P<needle>{_Q})"),
    (object, "found_none", r"found \[\], missing (?P<missing>\[.*\])"),
    (object, "found_missing", r"found (?P<found>\[.*?\]), missing (?P<missing>\[.*\])"),
    (object, "found_list", r"found (?P<found>\[.*\])"),
    (object, "equal", r"equal"),
    (object, "json_equal", r"JSON equal"),
    (object, "json_differs", r"JSON differs from the expected value"),
    (object, "not_json_equal", r"output is not JSON, so it cannot equal the expected structure"),
    (object, "expected_got", rf"expected (?P<expected>{_Q}), got (?P<got>{_Q})"),
    (object, "starts", rf"starts with (?P<prefix>{_Q})"),
    (object, "not_starts", rf"does not start with (?P<prefix>{_Q})"),
    (object, "no_match", r"no match for (?P<pattern>/.*/)"),
    (object, "matched", rf"matched (?P<text>{_Q})"),
    (object, "count", r"(?P<n>\d+) (?P<unit>words|sentences|characters|chars) \((?P<side>within|outside) (?P<span>[0-9]*\.\.[0-9]*)\)"),
    # flywheel.checks.grounding (one reason lists every failure, `; `-separated)
    (object, "cites_none", r"the answer cites no source"),
    (object, "nothing_to_verify", r"no citations or quotations to verify"),
    (object, "quotes_no_cite", r"quotations verified but the answer cites no source"),
    (object, "all_verified", r"all (?P<c>\d+) citation\(s\) and (?P<q>\d+) quotation\(s\) verified"),
    (object, "some_verified", r"(?P<ok>\d+)/(?P<n>\d+) verified; (?P<failures>.+)"),
    # flywheel.checks.injection
    (object, "injection_text", rf"prompt injection in the text \(score (?P<score>{_N})\)"),
    (object, "injection_sources", (rf"instructions hidden in source\(s\) (?P<which>[\[\]0-9, ]+) \(score (?P<score>{_N}): "
                                   r"(?P<snippet>\".*\")\)")),
    (object, "no_injection", r"no injection found"),
    (object, "leak_nothing", r"nothing to check: no system prompt or secrets given"),
    (object, "leak_none", r"no system prompt or secret revealed"),
    (object, "leak_found", r"the output reveals (?P<kinds>.+)"),
    # flywheel.checks.judge (its reasoning otherwise: the judge's own words)
    (object, "judge_nothing", r"nothing to judge against"),
    (object, "judge_no_verdict", r"the judge gave no PASS/FAIL verdict"),
    (object, "judge_says", r"judge says (?P<verdict>pass|fail)"),
    (object, "judge_unreachable", r"the judge model could not be reached"),
    # flywheel.checks.language, overlap, perf, pii, similarity, structure, trained, diversity
    (object, "no_letters", r"no letters to detect a language from"),
    (object, "detected", r"detected (?P<got>\S+), expected (?P<want>\S+)"),
    (object, "nothing_to_compare", r"nothing to compare with"),
    (object, "edit_distance", rf"edit distance (?P<d>\d+) (?P<cmp>[≤>]) (?P<max>{_N})"),
    (object, "overlap_score", rf"(?P<metric>ROUGE-\d+|BLEU) (?P<score>{_N}) {_CMP} (?P<threshold>{_N})"),
    (object, "perf_missing", r"no (?P<field>\S+) recorded for this output"),
    (object, "perf_value", rf"(?P<value>{_N}) (?P<unit>\S+) {_CMP} (?P<limit>{_N}) (?P=unit)"),
    (object, "no_pii", r"no PII found"),
    (object, "pii_found", r"found (?P<n>\d+) PII span\(s\): (?P<kinds>.+)"),
    (object, "no_embedder", r"no embedder available"),
    (object, "cosine", rf"cosine (?P<score>{_N}) {_CMP} (?P<threshold>{_N})"),
    (object, "valid_json", r"valid JSON"),
    (object, "valid_json_schema", r"valid JSON matching the schema"),
    (object, "schema_violation", r"schema violation at (?P<at>.+?): (?P<detail>.+)"),
    (object, "not_json", r"not JSON: (?P<detail>.+)"),
    (object, "no_json", r"no JSON found in the output"),
    (object, "bad_xml", r"not well-formed XML: (?P<detail>.+)"),
    (object, "missing_elements", r"missing elements (?P<missing>.+)"),
    (object, "good_xml", r"well-formed XML"),
    (object, "trained_embedder", r"(?P<model>\S+) needs the embedder (?P<embedder>.+)"),
    (object, "trained_p", rf"(?P<model>\S+): p\(pass\) = (?P<p>{_N}) {_CMP} (?P<threshold>{_N})"),
    (object, "low_diversity", r"too little diversity over (?P<n>\d+) output\(s\): (?P<short>.+)"),
    (object, "diversity", r"(?P<shown>.+) over (?P<n>\d+) output\(s\)"),
    # flywheel.evals.runner: a multiple-choice case
    (object, "chose", r"chose (?P<said>.+) \(by (?P<method>[a-z_-]+)\); right: (?P<right>.+)"),
    # flywheel.feedback.agreement: why a statistic is undefined
    (object, "few_items", r"fewer than 2 items (?P<what>with 2 or more labels|labelled by both)"),
    (object, "one_category", r"only one category used: chance agreement is already perfect"),
    (object, "one_category_counted", (r"only one category used on the items that count: chance agreement is already "
                                      r"perfect")),
]
_COMPILED = [(kind, key, re.compile(pattern, re.DOTALL)) for kind, key, pattern in PATTERNS]

# grounding's failures, inside `some_verified`
_FAILURES = [
    (re.compile(r"\[(?P<n>\d+)\] cites a source that was not in the context \((?P<total>\d+) sources\)"),
     "[{n}] 引用的来源不在上下文中（共 {total} 个来源）"),
    (re.compile(r"quote (?P<quote>“.*”) does not occur in any source", re.DOTALL), "引文 {quote} 不在任何来源中"),
    (re.compile(r"quote (?P<quote>“.*”) does not occur in (?P<where>[\[\]0-9, ]+)", re.DOTALL),
     "引文 {quote} 不在 {where} 中"),
]

EN: dict[str, str] = {
    "negated": "negated: {inner}", "crashed": "check crashed: {exc}",
    "found": "found {needle}", "not_found": "did not find {needle}", "found_missing": "found {found}, missing {missing}",
    "found_none": "found [], missing {missing}", "found_list": "found {found}", "equal": "equal", "json_equal": "JSON equal",
    "json_differs": "JSON differs from the expected value",
    "not_json_equal": "output is not JSON, so it cannot equal the expected structure",
    "expected_got": "expected {expected}, got {got}", "starts": "starts with {prefix}",
    "not_starts": "does not start with {prefix}", "no_match": "no match for {pattern}", "matched": "matched {text}",
    "count": "{n} {unit} ({side} {span})",
    "cites_none": "the answer cites no source", "nothing_to_verify": "no citations or quotations to verify",
    "quotes_no_cite": "quotations verified but the answer cites no source",
    "all_verified": "all {c} citation(s) and {q} quotation(s) verified", "some_verified": "{ok}/{n} verified; {failures}",
    "injection_text": "prompt injection in the text (score {score})",
    "injection_sources": "instructions hidden in source(s) {which} (score {score}: {snippet})",
    "no_injection": "no injection found", "leak_nothing": "nothing to check: no system prompt or secrets given",
    "leak_none": "no system prompt or secret revealed", "leak_found": "the output reveals {kinds}",
    "judge_nothing": "nothing to judge against", "judge_no_verdict": "the judge gave no PASS/FAIL verdict",
    "judge_says": "judge says {verdict}", "judge_unreachable": "the judge model could not be reached",
    "no_letters": "no letters to detect a language from", "detected": "detected {got}, expected {want}",
    "nothing_to_compare": "nothing to compare with", "edit_distance": "edit distance {d} {cmp} {max}",
    "overlap_score": "{metric} {score} {cmp} {threshold}", "perf_missing": "no {field} recorded for this output",
    "perf_value": "{value} {unit} {cmp} {limit} {unit}", "no_pii": "no PII found",
    "pii_found": "found {n} PII span(s): {kinds}", "no_embedder": "no embedder available",
    "cosine": "cosine {score} {cmp} {threshold}", "valid_json": "valid JSON",
    "valid_json_schema": "valid JSON matching the schema", "schema_violation": "schema violation at {at}: {detail}",
    "not_json": "not JSON: {detail}", "no_json": "no JSON found in the output",
    "bad_xml": "not well-formed XML: {detail}", "missing_elements": "missing elements {missing}",
    "good_xml": "well-formed XML", "trained_embedder": "{model} needs the embedder {embedder}",
    "trained_p": "{model}: p(pass) = {p} {cmp} {threshold}",
    "low_diversity": "too little diversity over {n} output(s): {short}", "diversity": "{shown} over {n} output(s)",
    "chose": "chose {said} (by {method}); right: {right}",
    "few_items": "fewer than 2 items {what}",
    "one_category": "only one category used: chance agreement is already perfect",
    "one_category_counted": "only one category used on the items that count: chance agreement is already perfect",
}

ZH: dict[str, str] = {
    "negated": "取反：{inner}", "crashed": "检查出错：{exc}",
    "found": "找到 {needle}", "not_found": "未找到 {needle}", "found_missing": "找到 {found}，缺少 {missing}",
    "found_none": "一个都没有找到（缺少 {missing}）", "found_list": "找到 {found}", "equal": "相等", "json_equal": "JSON 相等", "json_differs": "JSON 与期望值不同",
    "not_json_equal": "输出不是 JSON，无法与期望的结构相等",
    "expected_got": "期望 {expected}，实际 {got}", "starts": "以 {prefix} 开头", "not_starts": "不以 {prefix} 开头",
    "no_match": "没有匹配 {pattern} 的内容", "matched": "匹配到 {text}",
    "count": "{n} 个{unit}（{side} {span}）",
    "cites_none": "回答没有引用任何来源", "nothing_to_verify": "没有需要核对的引用或引文",
    "quotes_no_cite": "引文已核对，但回答没有引用任何来源",
    "all_verified": "{c} 处引用和 {q} 处引文全部核对通过", "some_verified": "{ok}/{n} 处核对通过；{failures}",
    "injection_text": "文本中有提示词注入（分数 {score}）",
    "injection_sources": "来源 {which} 中藏有指令（分数 {score}：{snippet}）",
    "no_injection": "未发现注入", "leak_nothing": "无需检查：没有给出系统提示词或机密",
    "leak_none": "没有泄露系统提示词或机密", "leak_found": "输出泄露了 {kinds}",
    "judge_nothing": "没有可供评审对照的内容", "judge_no_verdict": "评审模型没有给出 PASS/FAIL 判定",
    "judge_says": "评审判定：{verdict}", "judge_unreachable": "无法连接评审模型",
    "no_letters": "没有可用于检测语言的文字", "detected": "检测到 {got}，期望 {want}",
    "nothing_to_compare": "没有可比较的内容", "edit_distance": "编辑距离 {d} {cmp} {max}",
    "overlap_score": "{metric} {score} {cmp} {threshold}", "perf_missing": "此输出没有记录{field}",
    "perf_value": "{value} {unit} {cmp} {limit} {unit}", "no_pii": "未发现个人信息",
    "pii_found": "发现 {n} 处个人信息：{kinds}", "no_embedder": "没有可用的嵌入模型",
    "cosine": "余弦相似度 {score} {cmp} {threshold}", "valid_json": "有效的 JSON",
    "valid_json_schema": "有效的 JSON，符合 schema", "schema_violation": "{at} 处不符合 schema：{detail}",
    "not_json": "不是 JSON：{detail}", "no_json": "输出中没有 JSON",
    "bad_xml": "XML 格式不正确：{detail}", "missing_elements": "缺少元素 {missing}",
    "good_xml": "格式正确的 XML", "trained_embedder": "{model} 需要嵌入模型 {embedder}",
    "trained_p": "{model}：p(通过) = {p} {cmp} {threshold}",
    "low_diversity": "{n} 个输出的多样性太低：{short}", "diversity": "{n} 个输出：{shown}",
    "chose": "选择了 {said}（方式：{method}）；正确答案：{right}",
    "few_items": "{what}的条目少于 2 个",
    "one_category": "只用了一个类别：随机一致已是完全一致",
    "one_category_counted": "计入的条目只用了一个类别：随机一致已是完全一致",
}
TEXT = {"en": EN, "zh": ZH}

# values that are words, not names: shown in the page's language
_WORDS: dict[str, dict[str, str]] = {
    "unit": {"words": "词", "sentences": "句子", "characters": "字符", "chars": "字符"},
    "side": {"within": "在范围内", "outside": "超出"},
    "verdict": {"pass": "通过", "fail": "不通过"},
    "what": {"with 2 or more labels": "有 2 个及以上标签", "labelled by both": "两人都标注过"},
    "said": {"no choice it could read": "无法读出的选项"},
    "field": {"latency_ms": "延迟", "cost_usd": "费用"},
}


def _value(lang: str, name: str, value: str) -> str:
    if value in _WORDS.get(name, {}):
        return _WORDS[name][value]
    if name == "field":
        return f" {value} "
    if name == "inner":
        return reason_text(lang, value)
    if name == "failures":
        return "；".join(_failure(part) for part in value.split("; "))
    return value


def _failure(text: str) -> str:
    for pattern, zh in _FAILURES:
        m = pattern.fullmatch(text)
        if m is not None:
            return zh.format(**m.groupdict())
    return text


_TURN = re.compile(r"turn (\d+): (.*)", re.DOTALL)  # a multi-turn case's check reason names its turn first
_TURN_TEXT = {"zh": "第 {n} 轮：{reason}"}


def reason_text(lang: str, text: str | None) -> str:
    """A check's (or an agreement statistic's) reason in `lang`; the text itself when nobody mapped it."""
    if not text or lang == "en":
        return text or ""
    turn = _TURN.fullmatch(text)
    if turn is not None and lang in _TURN_TEXT:  # "turn 3: expected …": the turn, then the reason translated
        return _TURN_TEXT[lang].format(n=turn.group(1), reason=reason_text(lang, turn.group(2)))
    found = message_i18n.match(lang, text, _COMPILED, TEXT, param=lambda k, v: _value(lang, k, v))
    return text if found is None else found
