"""Texts the core builds (and often stores) in English, shown in the page's language: monitor alert messages (the
`monitor_alerts` log and the rules that fire now), alert rule bounds, drift alerts and reference warnings, eval
run and case errors, provider errors in the playground, alert-rule config problems.

Stored rows stay as they are (the CLI, webhooks and the `.json` twins show the English text, and rows written
before this module existed read the same way): the dashboard recognises the templates that build them —
flywheel.monitor.alerts.Alert.message, flywheel.monitor.drift's message functions, flywheel.errors.GatewayError,
UserError.render — and shows the Chinese text with the same values (names, ids, numbers, upstream text). A text
nobody mapped is shown as it is.

    alert_text("zh", "busy: volume = 60, above 10 [app=support]")   # -> "busy：volume = 60，高于 10 [app=support]"
    error_text("zh", run["error"])                                    # a stored eval error, hint included

Templates use them as filters (flywheel.web.render): `{{ a.message|alert_text(lang) }}`.
Add a text: a pattern in PATTERNS (named groups are the values) and its key in EN and ZH.
"""

from __future__ import annotations

import re

from flywheel.web import i18n, message_i18n

_Q = r"(?:'[^']*'|\"[^\"]*\")"
_BOUND = r"(?:p )?(?:above|below) [^\[\]]+?"

# (source exception type — `object`: any —, key, pattern); tried in order, the first full match wins
PATTERNS: list[tuple[type, str, str]] = [
    # flywheel.monitor.alerts.Alert.message: a metric alert, then one that says what moved in its own words
    (object, "alert_metric", (r"(?P<rule>.+?): (?P<metric>[A-Za-z0-9_]+) = (?P<value>[^\s,]+)"
                              rf"(?: \(baseline (?P<baseline>[^)]*)\))?, (?P<bound>{_BOUND}) \[(?P<group>.*)\]")),
    (object, "alert_detail", rf"(?P<rule>.+?): (?P<detail>.+), (?P<bound>{_BOUND}) \[(?P<group>.*)\]"),
    # bounds: an alert's ("above 2x baseline", "p below 0.01") and a rule's ("above 0.05 / below 0.5x")
    (object, "bound_ratio", r"(?P<p>p )?(?P<dir>above|below) (?P<n>[-+0-9.e]+)x(?: baseline)?"),
    (object, "bound_threshold", r"(?P<p>p )?(?P<dir>above|below) the threshold"),
    (object, "bound", r"(?P<p>p )?(?P<dir>above|below) (?P<n>[-+0-9.e]+)"),
    # flywheel.monitor.drift: alerts and reference warnings
    (object, "embeddings_drifted", r"(?P<side>input|output) embeddings drifted \(MMD p=(?P<p>[^,]+), AUC (?P<auc>[^)]+)\)"),
    (object, "field_shifted", r"(?P<field>\S+) shifted \(PSI (?P<psi>[^;]+); (?P<moved>.*)\)"),
    (object, "reference_empty_window", (r"the reference is empty: no traces to compare against in that window; "
                                       r"choose another --reference")),
    (object, "reference_empty_suite", (r"the reference is empty: no traces to compare against in (?P<suite>.+); "
                                      r"choose another --reference")),
    (object, "reference_small", (r"the reference holds (?P<n>\d+) (?P<unit>traces|cases); at least (?P<min>\d+) are "
                                 r"needed to test drift")),
    # flywheel.errors.GatewayError (an eval case's or a playground variant's error) and its hint
    (object, "gateway_failed", (rf"all models failed for alias (?P<alias>{_Q}) after (?P<n>\d+) attempt\(s\): "
                                r"(?P<tried>.*)")),
    (object, "gateway_hint", (r"check the endpoint is up and the API key is set(?P<fallbacks>, or add `fallbacks:` to "
                             r"the alias)?")),
    # flywheel.evals.runner / pairwise: a case that ran too long, a judge that failed
    (object, "timed_out", r"timed out after (?P<s>[0-9.]+) s"),
    (object, "judge_failed", r"judge call failed: (?P<detail>.+)"),
    (object, "judge_malformed", r"malformed judge output \(no verdict\): (?P<output>.*)"),
    # flywheel.monitor.alerts.check_rules: a rule the monitors page cannot evaluate
    (object, "rule_metric", r"alert rule (?P<rule>`[^`]*`) watches unknown metric (?P<metric>.+)"),
    (object, "rule_bound", r"alert rule (?P<rule>`[^`]*`) has neither `above` nor `below`"),
    (object, "rule_field", r"alert rule (?P<rule>`[^`]*`) filters on unknown field (?P<field>.+)"),
    (object, "rule_relative", r"alert rule (?P<rule>`[^`]*`): cannot read relative_to (?P<spec>.+)"),
]
_COMPILED = [(kind, key, re.compile(pattern, re.DOTALL)) for kind, key, pattern in PATTERNS]
# texts that name a CLI option: reworded on English pages too (EN says what to do on the page)
_WEB_WORDED = [c for c in _COMPILED if c[1] in ("reference_empty_window", "reference_empty_suite")]

EN: dict[str, str] = {
    "alert_metric": "{rule}: {metric} = {value}{baseline}, {bound} [{group}]",
    "alert_detail": "{rule}: {detail}, {bound} [{group}]",
    "bound_ratio": "{p}{dir} {n}x baseline", "bound_threshold": "{p}{dir} the threshold", "bound": "{p}{dir} {n}",
    "embeddings_drifted": "{side} embeddings drifted (MMD p={p}, AUC {auc})",
    "field_shifted": "{field} shifted (PSI {psi}; {moved})",
    # the core's text ends in "choose another --reference"; the drift page has a Reference field for it
    "reference_empty_window": "the reference is empty: no traces to compare against in that window; choose another "
                              "in the Reference field",
    "reference_empty_suite": "the reference is empty: no traces to compare against in {suite}; choose another in the "
                             "Reference field",
    "reference_small": "the reference holds {n} {unit}; at least {min} are needed to test drift",
    "gateway_failed": "all models failed for alias {alias} after {n} attempt(s): {tried}",
    "gateway_hint": "check the endpoint is up and the API key is set{fallbacks}",
    "timed_out": "timed out after {s} s", "judge_failed": "judge call failed: {detail}",
    "judge_malformed": "malformed judge output (no verdict): {output}",
    "rule_metric": "alert rule {rule} watches unknown metric {metric}",
    "rule_bound": "alert rule {rule} has neither `above` nor `below`",
    "rule_field": "alert rule {rule} filters on unknown field {field}",
    "rule_relative": "alert rule {rule}: cannot read relative_to {spec}",
}

ZH: dict[str, str] = {
    "alert_metric": "{rule}：{metric} = {value}{baseline}，{bound} [{group}]",
    "alert_detail": "{rule}：{detail}，{bound} [{group}]",
    "bound_ratio": "{p}{dir}基线的 {n} 倍", "bound_threshold": "{p}{dir}阈值", "bound": "{p}{dir} {n}",
    "embeddings_drifted": "{side}嵌入发生漂移（MMD p={p}，AUC {auc}）",
    "field_shifted": "{field} 的分布发生变化（PSI {psi}；{moved}）",
    "reference_empty_window": "参照为空：该时间窗内没有可比较的追踪；请在“参照”一栏换一个",
    "reference_empty_suite": "参照为空：{suite} 中没有可比较的内容；请在“参照”一栏换一个",
    "reference_small": "参照只有 {n} 条{unit}；检验漂移至少需要 {min} 条",
    "gateway_failed": "别名 {alias} 的所有模型都失败了（共尝试 {n} 次）：{tried}",
    "gateway_hint": "请确认端点可用、API 密钥已设置{fallbacks}",
    "timed_out": "{s} 秒后超时", "judge_failed": "评审模型调用失败：{detail}",
    "judge_malformed": "评审输出格式错误（没有判定）：{output}",
    "rule_metric": "告警规则 {rule} 监视的指标 {metric} 不存在",
    "rule_bound": "告警规则 {rule} 既没有 `above` 也没有 `below`",
    "rule_field": "告警规则 {rule} 按未知字段 {field} 筛选",
    "rule_relative": "告警规则 {rule}：无法读取 relative_to {spec}",
}
TEXT = {"en": EN, "zh": ZH}

# values that are words, not names: shown in the page's language
_WORDS: dict[str, dict[str, str]] = {
    "dir": {"above": "高于", "below": "低于"}, "p": {"p ": "p "}, "side": {"input": "输入", "output": "输出"},
    "unit": {"traces": "追踪", "cases": "用例"}, "group": {"all traffic": "全部流量"},
    "fallbacks": {", or add `fallbacks:` to the alias": "，或给该别名加上 `fallbacks:`"},
    "tried": {"no attempt was made": "没有进行任何尝试"},
}
# parts of an upstream failure that flywheel itself words (the rest is the provider's own text)
_ATTEMPT_PHRASES: dict[str, str] = {"request timed out": "请求超时"}
_HINT = "\n  hint: "  # flywheel.errors.UserError.render


def _value(lang: str, name: str, value: str) -> str:
    if value in _WORDS.get(name, {}):
        return _WORDS[name][value]
    if name in ("detail", "bound"):
        return _one(lang, value)
    if name == "baseline":
        return f"（基线 {value}）" if value else ""
    if name == "moved":
        return value.replace(", ", "，")
    if name == "tried":
        for en, zh in _ATTEMPT_PHRASES.items():
            value = value.replace(en, zh)
    return value


def _one(lang: str, text: str) -> str:
    """One message (no hint): the core's UserError messages (flywheel.web.message_i18n), else this module's."""
    found = message_i18n.known(lang, text)
    if found is None:
        found = message_i18n.match(lang, text, _COMPILED, TEXT, param=lambda k, v: _value(lang, k, v))
    return text if found is None else found


def alert_text(lang: str, text: str | None) -> str:
    """A monitor or drift alert message (and any text of this catalog) in `lang`."""
    if not text:
        return ""
    if lang == "en":
        return message_i18n.match(lang, text, _WEB_WORDED, TEXT) or text
    return _one(lang, text)


def bound_text(lang: str, text: str | None) -> str:
    """A rule's bounds as the monitors page lists them ("above 0.05 / below 0.5x")."""
    if not text or lang == "en":
        return text or ""
    return " / ".join(_one(lang, part) for part in text.split(" / "))


def error_text(lang: str, text: str | None) -> str:
    """A stored error: a UserError as rendered (`where: message` and a `hint:` line), a gateway failure, a timeout,
    `interrupted`; each part translated when known, the rest (paths, names, upstream text) as it is."""
    if not text or lang == "en":
        return text or ""
    if text == "interrupted":
        return i18n.Translator(lang).status(text)
    head, _, hint = text.partition(_HINT)
    shown = _one(lang, head)
    where, sep, rest = head.partition(": ")
    if shown == head and sep and " " not in where:  # `flywheel.yaml:12: message`
        shown = f"{where}: {_one(lang, rest)}"
    if not hint:
        return shown
    hint_shown = _one(lang, hint)
    if hint_shown == hint:
        hint_shown = message_i18n.phrases(hint)
    return f"{shown}\n  提示：{hint_shown}"
