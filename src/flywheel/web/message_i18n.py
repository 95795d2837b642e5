"""The dashboard's dynamic messages in the page's language: 404 texts, form validation, and the errors the core
raises while a page works (labelling, building a queue, adding a trace to a queue or suite).

The core and the API keep their English messages (the CLI, logs and the `.json` twins show them); the web layer
recognises the known ones here, by exception type and by the shape of the message, and shows the Chinese text
with the same parameters (ids, names, numbers). A message nobody mapped is shown as it is, in English.

    localize("zh", "no trace with id 'abc'")   # -> "没有 ID 为 'abc' 的追踪"
    localize_error("zh", exc)                   # a UserError: its message and hint, translated when known

Add a message: a pattern in PATTERNS (its named groups are the parameters) and its key in EN and ZH.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flywheel.errors import UserError
from flywheel.feedback.queues import ConflictError, NotFoundError
from flywheel.web import i18n

_Q = r"(?:'[^']*'|\"[^\"]*\")"  # a value as repr() or f"'{x}'" quotes it


def _p(name: str) -> str:
    return f"(?P<{name}>{_Q})"


# (the exception type the message comes from — `object` for the web layer's own texts —, i18n key, pattern)
PATTERNS: list[tuple[type, str, str]] = [
    # 404s (flywheel.web.render.not_found)
    (object, "nf_page", r"no page (?P<id>\S+)"),  # the address (flywheel.web.pages.unknown_page)
    (object, "nf_trace", rf"no trace with id {_p('id')}"),
    (object, "nf_span", rf"no span with id {_p('id')}"),
    (object, "nf_session", rf"no session with id {_p('id')}"),
    (object, "nf_prompt", rf"no stored prompt named {_p('name')}"),
    (object, "nf_eval_run_side", rf"no eval run {_p('id')} \((?P<side>base|cand)\)"),
    (object, "nf_eval_run", rf"no eval run {_p('id')}"),
    (NotFoundError, "nf_queue_close", rf"no review queue {_p('name')}; did you mean {_p('close')}\?"),
    (object, "nf_queue", rf"no review queue {_p('name')}"),
    (object, "nf_item_here", rf"no review item {_p('id')} in this queue"),
    (NotFoundError, "nf_item", rf"no review item {_p('id')}"),
    (object, "annotator_needed", r"an annotator name is needed( \(1-200 printable characters\))?"),
    (object, "annotator_chars", r"1-200 printable characters"),
    # labelling (flywheel.feedback.queues.label / undo)
    (ConflictError, "already_labelled", r"(?P<who>.+) already labelled item (?P<id>\S+)"),
    (ConflictError, "item_full", r"item (?P<id>\S+) already has its (?P<n>\d+) label\(s\)"),
    (ConflictError, "item_trace_gone", r"item (?P<id>\S+)'s trace was deleted: nothing left to label.*"),
    (NotFoundError, "nothing_to_undo", r"(?P<who>.+) has no label on item (?P<id>\S+) to undo"),
    (UserError, "bad_verdict", (rf"verdict {_p('verdict')} is not one of this (?P<kind>binary|pairwise) item's "
                               r"choices: (?P<choices>.+)")),
    (UserError, "text_too_long", r"the (?P<what>reason|correction) must be a text of at most (?P<n>\d+) characters"),
    # building a queue, adding a trace to one (create_queue, sample_strata, get_queue, add_items)
    (UserError, "empty_window", (rf"no unqueued traces for strategy {_p('strategy')} in (?P<scope>.+): nothing to "
                                r"review")),
    (UserError, "empty_pairs", (r"no pairs of traces answering the same input with different models or prompts in "
                               r"(?P<scope>.+): nothing to review")),
    (UserError, "queued_meanwhile", r"every sampled trace was queued by someone else meanwhile"),
    (UserError, "queue_exists", rf"a queue named {_p('name')} already exists"),
    (UserError, "queue_ambiguous", rf"(?P<n>\d+) tenants have a review queue named {_p('name')}"),
    (UserError, "queue_pairwise", rf"queue {_p('name')} is pairwise; traces are added to binary queues"),
    (UserError, "unknown_traces", r"unknown trace id\(s\): (?P<ids>.+)"),
    (UserError, "already_queued", r"trace\(s\) already in a review queue: (?P<ids>.+)"),
    (UserError, "pair_twice", r"a pair compares two different traces \(got (?P<id>\S+) twice\)"),
    (UserError, "pair_queued", r"the pair (?P<a>\S+) / (?P<b>\S+) is already in a review queue"),
    (UserError, "unknown_strategy", rf"unknown sampling strategy {_p('name')}"),
    # the trace page's "add to eval suite" (flywheel.web.trace_view.suite_path)
    (UserError, "suite_name", rf"invalid suite file name {_p('name')}"),
    (UserError, "suite_outside", rf"suite file {_p('name')} is outside evals/"),
    # a new suite for a trace whose app is not in flywheel.yaml (flywheel.evals.promote; the hint is the web's)
    (UserError, "suite_no_target_of", r"cannot tell which app the new suite should run \(traces of (?P<apps>.+)\)"),
    (UserError, "suite_no_target", r"cannot tell which app the new suite should run"),
    (UserError, "suite_target_hint", (r"the trace's app is not one of flywheel\.yaml's apps: choose an existing suite, or run "
                                      r"(?P<cmd>`flywheel promote [^`]+`)")),
    # validation of a page's URL or form
    (object, "whole_number", r"a whole number from (?P<low>\d+) to (?P<high>\d+)"),
    (object, "one_of_or_empty", r"one of (?P<choices>.+) \(or empty\)"),
    (object, "one_of", r"one of (?P<choices>.+)"),
    (object, "time_format", r"a time is a Unix number, an ISO date \((?P<a>\S+)\) or an age \((?P<b>[^)]+)\)"),
    (UserError, "cannot_read", r"cannot read (?P<what>.+?) " + _p("text")),
    (UserError, "range_needs_ends", rf"--reference {_p('spec')}: a range needs a start and an end"),
    (UserError, "range_backwards", rf"--reference {_p('spec')}: the range ends before it starts"),
    (UserError, "since_not_before_until", r"--since is not before --until"),
    (object, "drift_failed", r"the drift report failed: (?P<detail>.+)"),
    (UserError, "nf_suite", rf"no eval suite {_p('name')}"),  # flywheel.monitor.drift: --reference eval:SUITE
    (UserError, "suite_no_inputs", rf"suite {_p('name')} has no text inputs to compare"),
    (object, "since_before_until", r"must be before until"),
    (object, "too_many_windows", (r"the range holds more than (?P<n>\d+) windows of (?P<window>\S+); pick a longer "
                                 r"window")),
    (object, "time_range", r"a time between 1970 and the year 3000"),
    (object, "at_most_chars", r"at most (?P<n>\d+) characters"),
    (object, "run_id_needed", r"a run id is needed"),
    (object, "not_a_check", r"not a check of this run: it ran none"),
    (object, "not_a_check_of", r"not a check of this run: (?P<checks>.+)"),
    (object, "both_refs", r"give both a and b \(two versions or labels\)"),
    (object, "write_input", r"write an input"),
    (object, "choose_model", r"choose a model for at least one variant"),
    (object, "unknown_model", rf"unknown model alias {_p('name')}; known: (?P<known>.*)"),
    (object, "prompt_name", r"letters, digits, '_', '\.' or '-' \(at most 100\), starting with a letter or digit"),
    (object, "template_needed", r"a template is needed \(e\.g\. (?P<example>.+)\)"),
    (UserError, "invalid_cursor", rf"invalid page cursor {_p('cursor')}"),
    (UserError, "no_prompt_versions", rf"prompt {_p('name')} has no stored versions or labels"),
    (UserError, "no_prompt_ref", (rf"prompt {_p('name')} has no (?P<what>version or label|label|version) "
                                 rf"{_p('ref')}(?P<rest>.*)")),
    # pydantic's texts for the traces page's filters (flywheel.tracing.search.TraceQuery)
    (object, "pd_choice", r"Input should be (?P<choices>'.+')"),
    (object, "pd_ge", r"Input should be greater than or equal to (?P<n>\S+)"),
    (object, "pd_number", r"Input should be a valid number, unable to parse string as a number"),
    (object, "pd_max_len", r"String should have at most (?P<n>\d+) characters?"),
]
_COMPILED = [(kind, key, re.compile(pattern, re.DOTALL)) for kind, key, pattern in PATTERNS]

# Hints and parts of messages that are built from fixed phrases (an empty queue's remedies, its scope)
PHRASES: dict[str, str] = {
    "widen the window (--since / --until)": "放宽时间窗（--since / --until）",
    "drop --app": "去掉 --app", "try --strategy random": "试试 --strategy random",
    "record more traffic (flywheel ask, flywheel serve)": "记录更多流量（flywheel ask、flywheel serve）",
    "answer the same questions with another model or prompt version": "用另一个模型或提示词版本回答同样的问题",
    "; traces already in a queue are not sampled again": "；已在队列中的追踪不会再被抽样",
    ", or ": "，或", ", ": "，", "the whole store": "整个存储", "app ": "应用 ", "tenant ": "租户 ",
    "since ": "起始 ", "until ": "截止 ", "sample again": "请重新抽样",
    "choose another --name, or omit it for a dated one": "换一个名称，或留空按日期命名",
    "choose a name inside evals/": "请选 evals/ 内的名称",
    "letters, digits and _.-/ inside evals/, e.g. regressions.yaml": "evals/ 内的字母（中文也可以）、数字和 _.-/，"
                                                                     "例如 regressions.yaml 或 回归.yaml",
    "start again from the first page": "请从第一页重新开始",
    "give a --since earlier than --until": "起始时间须早于截止时间",
    "write eval:SUITE, window:30d or window:2026-10-01..2026-10-06": "写成 eval:SUITE、window:30d 或 "
                                                                    "window:2026-10-01..2026-10-06",
    "write a number and a unit: 30m, 1h, 1d, 7d, 2w": "写成数字加单位：30m、1h、1d、7d、2w",
    "a duration (1h, 1d) or a number of traces (500)": "时长（1h、1d）或追踪条数（500）",
    "a duration (30m, 1h, 1d) or a number of traces (500, `500 traces`)": "时长（30m、1h、1d）或追踪条数（500、"
                                                                         "`500 traces`）",
    "list traces with `flywheel traces`": "用 `flywheel traces` 列出追踪",
    "a trace is reviewed once; leave these out": "每条追踪只审核一次；请去掉这些",
    "list traces with `flywheel traces` (of the queue's tenant)": "用 `flywheel traces` 列出（该队列租户的）追踪",
}
_WORDS = re.compile(r"[A-Za-z]+(?: [A-Za-z]+){2,}")  # three English words in a row: still untranslated

# Remedies in the core's hints that name a CLI option or command: on a page, the form field or page to use instead
# (the CLI keeps its wording; the new-queue form's fields are App and Strategy, trace ids are on the Traces page)
WEB_ACTIONS: dict[str, dict[str, str]] = {
    "drop --app": {"en": "clear the App field", "zh": "清空“应用”一栏"},
    "try --strategy random": {"en": "try the Strategy “random”", "zh": "试试“随机”抽样策略"},
    "list traces with `flywheel traces` (of the queue's tenant)": {
        "en": "find the trace ids of the queue's tenant on the Traces page (/ui/traces)",
        "zh": "在“追踪”页（/ui/traces）查找该队列租户的追踪 ID"},
    "list traces with `flywheel traces`": {"en": "find trace ids on the Traces page (/ui/traces)",
                                           "zh": "在“追踪”页（/ui/traces）查找追踪 ID"},
    "take the next item with `flywheel review` (it skips such items)": {
        "en": "reload the page for the next item (deleted traces are skipped)",
        "zh": "刷新页面以取下一条（已删除的追踪会被跳过）"},
    "choose another --name, or omit it for a dated one": {"en": "choose another name, or leave the Name field empty "
                                                          "for a dated one", "zh": "换一个名称，或留空“名称”一栏按日期命名"},
    # only the CLI answers with another model: its command in full, not an elided one
    " (flywheel ask … --model ALIAS)": {"en": " (`flywheel ask \"QUESTION\" --model ALIAS` for each question)",
                                       "zh": "（对每个问题运行 `flywheel ask \"问题\" --model 模型别名`）"},
}

# CLI options that messages of the core name, and the form field of the page that takes the same value
# (the traces, metrics and monitors pages): a page names the field, never the option
WEB_FIELDS: dict[str, dict[str, str]] = {
    "--reference": {"en": "Reference", "zh": "参照"}, "--since": {"en": "Since", "zh": "起始时间"},
    "--until": {"en": "Until", "zh": "截止时间"}, "--window": {"en": "Window", "zh": "时间窗"},
}
_FLAG = re.compile(r"(?<![\w-])(" + "|".join(re.escape(f) for f in WEB_FIELDS) + r")(?![\w-])")

EN: dict[str, str] = {
    "nf_page": "no page {id}", "nf_trace": "no trace with id {id}", "nf_span": "no span with id {id}",
    "nf_session": "no session with id {id}",
    "nf_prompt": "no stored prompt named {name}", "nf_eval_run": "no eval run {id}",
    "nf_eval_run_side": "no eval run {id} ({side})", "nf_queue": "no review queue {name}",
    "nf_queue_close": "no review queue {name}; did you mean {close}?", "nf_item": "no review item {id}",
    "nf_item_here": "no review item {id} in this queue",
    "annotator_needed": "an annotator name is needed (1-200 printable characters)",
    "annotator_chars": "1-200 printable characters",
    "already_labelled": "{who} already labelled item {id}", "item_full": "item {id} already has its {n} label(s)",
    "item_trace_gone": "item {id}'s trace was deleted: nothing left to label (progress counts it as gone)",
    "nothing_to_undo": "{who} has no label on item {id} to undo",
    "bad_verdict": "verdict {verdict} is not one of this {kind} item's choices: {choices}",
    "text_too_long": "the {what} must be a text of at most {n} characters",
    "empty_window": "no unqueued traces for strategy {strategy} in {scope}: nothing to review",
    "empty_pairs": "no pairs of traces answering the same input with different models or prompts in {scope}: "
                   "nothing to review",
    "queued_meanwhile": "every sampled trace was queued by someone else meanwhile",
    "queue_exists": "a queue named {name} already exists",
    "queue_ambiguous": "{n} tenants have a review queue named {name}",
    "queue_pairwise": "queue {name} is pairwise; traces are added to binary queues",
    "unknown_traces": "unknown trace id(s): {ids}", "already_queued": "trace(s) already in a review queue: {ids}",
    "pair_twice": "a pair compares two different traces (got {id} twice)",
    "pair_queued": "the pair {a} / {b} is already in a review queue", "unknown_strategy": "unknown sampling strategy {name}",
    "suite_name": "invalid suite file name {name}", "suite_outside": "suite file {name} is outside evals/",
    "suite_no_target_of": "cannot tell which app the new suite should run (traces of {apps})",
    "suite_no_target": "cannot tell which app the new suite should run",
    "suite_target_hint": "the trace's app is not one of flywheel.yaml's apps: choose an existing suite, or run {cmd}",
    "whole_number": "a whole number from {low} to {high}", "one_of": "one of {choices}",
    "one_of_or_empty": "one of {choices} (or empty)",
    "time_format": "a time is a Unix number, an ISO date ({a}) or an age ({b})",
    "cannot_read": "cannot read {what} {text}", "range_needs_ends": "--reference {spec}: a range needs a start and an end",
    "range_backwards": "--reference {spec}: the range ends before it starts",
    "since_not_before_until": "--since is not before --until", "drift_failed": "the drift report failed: {detail}",
    "nf_suite": "no eval suite {name}", "suite_no_inputs": "suite {name} has no text inputs to compare",
    "since_before_until": "must be before until",
    "too_many_windows": "the range holds more than {n} windows of {window}; pick a longer window",
    "time_range": "a time between 1970 and the year 3000",
    "at_most_chars": "at most {n} characters", "run_id_needed": "a run id is needed",
    "not_a_check": "not a check of this run: it ran none", "not_a_check_of": "not a check of this run: {checks}",
    "both_refs": "give both a and b (two versions or labels)", "write_input": "write an input",
    "choose_model": "choose a model for at least one variant", "unknown_model": "unknown model alias {name}; known: {known}",
    "prompt_name": "letters, digits, '_', '.' or '-' (at most 100), starting with a letter or digit",
    "template_needed": "a template is needed (e.g. {example})", "invalid_cursor": "invalid page cursor {cursor}",
    "no_prompt_versions": "prompt {name} has no stored versions or labels",
    "no_prompt_ref": "prompt {name} has no {what} {ref}{rest}",
    "pd_choice": "Input should be {choices}", "pd_ge": "Input should be greater than or equal to {n}",
    "pd_number": "Input should be a valid number, unable to parse string as a number",
    "pd_max_len": "String should have at most {n} characters",
}

ZH: dict[str, str] = {
    "nf_page": "没有页面 {id}", "nf_trace": "没有 ID 为 {id} 的追踪", "nf_span": "没有 ID 为 {id} 的跨度",
    "nf_session": "没有 ID 为 {id} 的会话",
    "nf_prompt": "没有名为 {name} 的已存储提示词", "nf_eval_run": "没有评测运行 {id}",
    "nf_eval_run_side": "没有评测运行 {id}（{side}）", "nf_queue": "没有审核队列 {name}",
    "nf_queue_close": "没有审核队列 {name}；你是不是要找 {close}？", "nf_item": "没有审核条目 {id}",
    "nf_item_here": "此队列中没有审核条目 {id}",
    "annotator_needed": "需要标注人名称（1–200 个可打印字符）", "annotator_chars": "须为 1–200 个可打印字符",
    "already_labelled": "{who} 已标注过条目 {id}", "item_full": "条目 {id} 已有全部 {n} 个标签",
    "item_trace_gone": "条目 {id} 的追踪已被删除，无可标注，进度中计为“已消失”",
    "nothing_to_undo": "{who} 在条目 {id} 上没有可撤销的标签",
    "bad_verdict": "判定 {verdict} 不是此{kind}条目的可选项：{choices}",
    "text_too_long": "{what}须为最多 {n} 个字符的文本",
    "empty_window": "在{scope}中没有抽样策略 {strategy} 可用的未入队追踪：没有可审核的内容",
    "empty_pairs": "在{scope}中没有用不同模型或提示词回答同一输入的追踪对：没有可审核的内容",
    "queued_meanwhile": "抽到的追踪都已被别人同时加入了队列",
    "queue_exists": "已有名为 {name} 的队列", "queue_ambiguous": "有 {n} 个租户都有名为 {name} 的审核队列",
    "queue_pairwise": "队列 {name} 是成对队列；追踪只能加入二元队列",
    "unknown_traces": "未知的追踪 ID：{ids}", "already_queued": "这些追踪已在审核队列中：{ids}",
    "pair_twice": "一对要比较两条不同的追踪（{id} 出现了两次）", "pair_queued": "追踪对 {a} / {b} 已在审核队列中",
    "unknown_strategy": "未知的抽样策略 {name}",
    "suite_name": "无效的评测套件文件名 {name}", "suite_outside": "评测套件文件 {name} 不在 evals/ 内",
    "suite_no_target_of": "无法判断新评测套件要运行哪个应用（追踪来自 {apps}）",
    "suite_no_target": "无法判断新评测套件要运行哪个应用",
    "suite_target_hint": "该追踪的应用不在 flywheel.yaml 的 apps 中：请选一个已有的评测套件，或运行 {cmd}",
    "whole_number": "须为 {low} 到 {high} 之间的整数", "one_of": "须为以下之一：{choices}",
    "one_of_or_empty": "须为以下之一：{choices}（或留空）",
    "time_format": "时间须为 Unix 秒数、ISO 日期（{a}）或时长（{b}）",
    "cannot_read": "无法读取 {what} {text}", "range_needs_ends": "--reference {spec}：范围需要起点和终点",
    "range_backwards": "--reference {spec}：范围的终点早于起点", "since_not_before_until": "--since 不早于 --until",
    "drift_failed": "漂移报告失败：{detail}", "since_before_until": "须早于截止时间",
    "nf_suite": "没有评测套件 {name}", "suite_no_inputs": "评测套件 {name} 没有可比较的文本输入",
    "too_many_windows": "该时间范围超过 {n} 个 {window} 时间窗；请选更长的时间窗",
    "time_range": "须为 1970 年到 3000 年之间的时间", "at_most_chars": "最多 {n} 个字符", "run_id_needed": "需要运行 ID",
    "not_a_check": "不是此运行的检查：它没有运行任何检查", "not_a_check_of": "不是此运行的检查：{checks}",
    "both_refs": "a 和 b 都要填写（两个版本或标签）", "write_input": "请填写输入",
    "choose_model": "至少为一个变体选择模型", "unknown_model": "未知的模型别名 {name}；已知：{known}",
    "prompt_name": "只能使用英文字母、数字和 _ . -（最多 100 个字符），以字母或数字开头",
    "template_needed": "需要模板（例如 {example}）", "invalid_cursor": "无效的分页游标 {cursor}",
    "no_prompt_versions": "提示词 {name} 没有已存储的版本或标签",
    "no_prompt_ref": "提示词 {name} 没有{what} {ref}{rest}",
    "pd_choice": "须为 {choices} 之一", "pd_ge": "须大于或等于 {n}", "pd_number": "须为数字",
    "pd_max_len": "最多 {n} 个字符",
}
# parameters that are words, not ids: shown in the page's language
_WORD_PARAMS: dict[str, dict[str, str]] = {
    "kind": {"binary": "二元", "pairwise": "成对"},
    "what": {"reason": "理由", "correction": "更正", "version or label": "版本或标签", "label": "标签", "version": "版本",
             "reference range start": "参照范围起点", "--reference window": "--reference 时间窗"},
    "side": {"base": "基线", "cand": "候选"},
}
TEXT = {"en": EN, "zh": ZH}


def localize(lang: str, text: str | None, source: Any = None) -> str:
    """`text` (an English message) in `lang` when it is a known one, else as it is. `source` is the exception it
    came from, if known: then a pattern tied to an exception type only matches a message of that type."""
    if text is None:
        return ""
    found = known(lang, text, source)
    return web_fields(lang, text if found is None else found)


def known(lang: str, text: str, source: Any = None) -> str | None:
    """`text` in `lang` when a pattern of this catalog knows it; None in English or when none does."""
    return None if lang == "en" else match(lang, text, _COMPILED, TEXT, source)


def web_fields(lang: str, text: str) -> str:
    """`text` with each CLI option of WEB_FIELDS named as its form field; quoted values (a user's input) stay."""
    parts = re.split(f"({_Q}|`[^`]*`)", text)  # a command in backticks is meant for the CLI: it keeps its options
    return "".join(part if i % 2 else _FLAG.sub(lambda m: WEB_FIELDS[m.group(1)].get(lang, WEB_FIELDS[m.group(1)]["en"]),
                                                 part) for i, part in enumerate(parts))


def match(lang: str, text: str, compiled: list[tuple[type, str, re.Pattern[str]]], table: dict[str, dict[str, str]],
          source: Any = None, param: Callable[[str, str], str] | None = None) -> str | None:
    """`text` in `lang` by the first of `compiled` (exception type, key, pattern) that matches it whole, its
    named groups passed through `param` (name, value) (default: this module's word parameters); None when none
    matches. The other catalogs (flywheel.web.stored_i18n) use it with their own patterns and tables."""
    for kind, key, pattern in compiled:
        if source is not None and kind is not object and not isinstance(source, kind):
            continue
        m = pattern.fullmatch(text.strip())
        if m is not None:
            values = {k: (param or _param)(k, v or "") for k, v in m.groupdict().items()}
            return i18n.Translator(lang, table)(key, **values)
    return None


def localize_error(lang: str, exc: UserError) -> str:
    """A UserError as a page shows it: its message and, in parentheses, its hint, each translated when known."""
    message = localize(lang, exc.message, exc)
    hint = web_actions(lang, exc.hint or "")
    if hint and lang != "en":
        found = known(lang, hint, exc)
        hint = phrases(hint) if found is None else found
    hint = web_fields(lang, hint)
    if known(lang, exc.message, exc) is not None and _WORDS.search(hint):
        hint = ""  # the message says what went wrong in Chinese; an untranslated CLI hint would only add English
    if not hint:
        return message
    return f"{message}（{hint}）" if lang == "zh" else f"{message} ({hint})"


def web_actions(lang: str, hint: str) -> str:
    """`hint` with each remedy that names a CLI option or command worded as the action on a page (WEB_ACTIONS)."""
    for cli, web in sorted(WEB_ACTIONS.items(), key=lambda kv: -len(kv[0])):
        hint = hint.replace(cli, web.get(lang, web["en"]))
    return hint


def localize_all(lang: str, errors: dict[str, str]) -> dict[str, str]:
    """A page's {field: why} with each reason in `lang`."""
    return {k: localize(lang, v) for k, v in errors.items()}


def _param(name: str, value: str) -> str:
    words = _WORD_PARAMS.get(name, {})
    if value in words:
        return words[value]
    if name == "choices":
        return value.replace(" or ", " 或 ")
    if name == "rest":
        value = re.sub(r" \(known [a-z ]+: (.*)\)$", r"（已知：\1）", value)
        value = re.sub(r" \(it has no [a-z ]+ yet\)$", "（尚无）", value)
        return value.replace(" — did you mean ", "——你是不是要找 ").replace("' or '", "' 或 '").replace("?", "？")
    return phrases(value) if name == "scope" else value


def phrases(text: str) -> str:
    """`text` with its known fixed phrases translated; unchanged unless every English sentence part went."""
    out = text
    for en, zh in sorted(PHRASES.items(), key=lambda kv: -len(kv[0])):
        out = out.replace(en, zh)
    return text if _WORDS.search(re.sub(rf"{_Q}|`[^`]*`", " ", out)) else out
