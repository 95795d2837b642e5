"""UI text of the review and evals pages (English and Chinese), on top of the dashboard's own (flywheel.web.i18n):
templates call `tx("key")`, which looks here first and falls back to the shared table."""

from __future__ import annotations

from flywheel.web import i18n

EN: dict[str, str] = {
    "review": "Review", "evals": "Evals", "queues": "Review queues", "queue": "Queue",
    "no_queues": "No review queues yet: New queue samples traces to label "
    "(or `flywheel review sample -n 50`); then open the queue and label with the keyboard.",
    "new_queue": "New queue", "create": "Create", "strategy": "Strategy", "n_items": "Items", "overlap": "Annotators per item",
    "kind": "Kind", "binary": "binary (pass / fail)", "pairwise": "pairwise (A / B / tie)", "progress": "Progress",
    "complete": "complete", "gone_n": "items whose trace was deleted (skipped)", "annotators": "Annotators", "labels_n": "labels", "items_n": "items", "created": "Created",
    "trace_ids": "Trace ids (one a line; empty: sample)", "queue_name": "Name (empty: dated)",
    "annotator": "Annotator", "annotator_help": "Your name as an annotator (remembered in this browser).",
    "start": "Start labelling", "agreement": "Agreement", "item": "Item", "input": "Input",
    "final_prompt": "Final prompt as sent", "sources": "Retrieved sources", "answer": "Answer",
    "answer_a": "Answer A", "answer_b": "Answer B", "reason": "Reason", "correction": "Correction (the right answer)",
    "pass": "Pass", "fail": "Fail", "a": "A is better", "b": "B is better", "tie": "Tie", "undo": "Undo last",
    "skip": "Skip",
    "keys_binary": "Keys: P pass · F fail · S skip · U undo the last label · R write a reason (Esc leaves it).",
    "keys_pairwise": "Keys: A · B · T tie · S skip · U undo the last label · R write a reason (Esc leaves it).",
    "done": "Done: no more items for you in this queue.", "mine": "labelled by you", "labelled": "Labelled",
    "undone": "Your label was removed; label this item again.",
    "cohen": "Cohen's κ per pair", "fleiss": "Fleiss' κ", "alpha": "Krippendorff's α", "ci95": "95 % interval",
    "n": "n", "pair": "Pair", "undefined": "undefined", "disagreements": "Disagreements", "verdicts": "Verdicts",
    "no_disagreements": "No disagreements.", "judge_vs_human": "Judge vs. people",
    "judge_line": "judge calibration v{version}: κ = {kappa} on {n} held-out items{adopted}",
    "no_judge": "No judge was calibrated on this queue. Only the CLI calibrates one: `flywheel judge calibrate "
    "evals/SUITE.yaml#CHECK --queue {queue}`, with the judge check of your suite (docs/judge-calibration.md).",
    "adopted": " (adopted)", "add_trace": "Add this trace to a new review queue", "trace": "Trace",
    "runs": "Eval runs", "run": "Run", "suite": "Suite", "target": "Target", "model": "Model",
    "pass_rate": "Pass rate", "cost": "Cost", "date": "Date", "status": "Status",
    "no_runs_match": "No eval runs match these filters.",
    "no_runs": "No eval runs yet: write a suite in evals/ and run "
    "`flywheel eval` (docs/evals.md); each run shows up here.",
    "cases": "Cases", "case": "Case", "repeats": "Repeats", "passes": "Passes", "flaky": "flaky", "failed": "failed",
    "passed": "passed", "all": "all", "show": "Show", "check": "Failing check", "apply": "Apply",
    "output": "Output", "reference": "Reference", "checks": "Checks", "compare": "Compare",
    "compare_runs": "Compare two runs", "base": "Base", "cand": "Candidate", "delta": "Change",
    "regressions_only": "Regressions only", "regression": "regression", "fix": "fix", "same": "same",
    "new": "new", "missing": "missing", "diff_outputs": "Output: base → candidate",
    "diff_reference": "Candidate output vs. reference", "paired_test": "Paired test of the pass-rate change",
    "mcnemar": "McNemar exact (sign test on the discordant cases)", "regressions": "regressions", "fixes": "fixes",
    "paired_ci": "paired bootstrap 95 % interval of the change", "p_value": "p",
    "pairwise_judge": "Pairwise judge", "no_comparison": "No stored pairwise comparison of these two runs. Only "
    "the CLI judges one: `flywheel compare {base} {cand}`.", "outcome": "Outcome", "question": "Question", "judge_reason": "Judge's reason",
    "first_page": "← First page", "next_page": "Next page →", "prev_page": "← Previous", "rows_of": "rows {a}–{b} of {n}",
    "invalid": "invalid", "export": "Export", "case_rule": "A case passes when every repeat passed.",
    "open": "Open", "queue_meta": "({kind}, {label} {n})",
    "kind_binary": "binary", "kind_pairwise": "pairwise",
    # sampling strategies and judge outcomes as shown (tx.label); forms, URLs and JSON keep the English value
    "strategy_mixed": "mixed", "strategy_random": "random", "strategy_negative-feedback": "negative-feedback",
    "strategy_guard-triggered": "guard-triggered", "strategy_low-score": "low-score",
    "strategy_uncertain": "uncertain", "strategy_new-topic": "new-topic", "strategy_explicit": "explicit",
    "outcome_tie": "tie", "outcome_skipped": "skipped", "outcome_error": "error",
    "err_whole_number": "a whole number from {low} to {high}", "err_kind": "binary or pairwise",
    "err_strategy": "one of {choices}", "err_name_new": "'new' is the address of this form; choose another name",
    "err_name": "letters, digits and _.:- only (at most 200, starting with a letter or digit), e.g. daily-0612",
    "err_ids_pairwise": "trace ids make a binary queue; pairwise queues are sampled",
    "err_no_traces": "There are no traces to review yet: send some requests through `flywheel serve` (or run "
    "`flywheel ask`), then create the queue.",
    "shared_queues": "{n} queue(s) built without a tenant (`flywheel review sample` without `--tenant`) cover every "
    "tenant, so only the admin key or the open local server lists them. For this key's tenant: `flywheel review "
    "sample --tenant {tenant}`, or New queue here.",
}

ZH: dict[str, str] = {
    "review": "审核", "evals": "评测", "queues": "审核队列", "queue": "队列",
    "no_queues": "还没有审核队列：点“新建队列”抽样要标注的追踪"
    "（或运行 `flywheel review sample -n 50`），再打开队列用键盘标注。",
    "new_queue": "新建队列", "create": "创建", "strategy": "抽样策略", "n_items": "条目数", "overlap": "每条的标注人数",
    "kind": "类型", "binary": "二元（通过 / 不通过）", "pairwise": "成对（A / B / 平局）", "progress": "进度",
    "complete": "已完成", "gone_n": "个条目的追踪已被删除（已跳过）", "annotators": "标注人", "labels_n": "个标签", "items_n": "个条目", "created": "创建时间",
    "trace_ids": "追踪 ID（每行一个；留空则抽样）", "queue_name": "名称（留空则按日期命名）",
    "annotator": "标注人", "annotator_help": "你的标注人名称（本浏览器会记住）。",
    "start": "开始标注", "agreement": "一致性", "item": "条目", "input": "输入",
    "final_prompt": "实际发送的最终提示词", "sources": "检索到的来源", "answer": "回答",
    "answer_a": "回答 A", "answer_b": "回答 B", "reason": "理由", "correction": "更正（正确的回答）",
    "pass": "通过", "fail": "不通过", "a": "A 更好", "b": "B 更好", "tie": "平局", "undo": "撤销上一个",
    "skip": "跳过",
    "keys_binary": "快捷键：P 通过 · F 不通过 · S 跳过 · U 撤销上一个标签 · R 填写理由（Esc 离开输入框）。",
    "keys_pairwise": "快捷键：A · B · T 平局 · S 跳过 · U 撤销上一个标签 · R 填写理由（Esc 离开输入框）。",
    "done": "完成：此队列中没有留给你的条目了。", "mine": "由你标注", "labelled": "已标注",
    "undone": "你的标签已删除；请重新标注此条目。",
    "cohen": "每对标注人的 Cohen κ", "fleiss": "Fleiss κ", "alpha": "Krippendorff α", "ci95": "95% 区间",
    "n": "n", "pair": "标注人对", "undefined": "无定义", "disagreements": "分歧", "verdicts": "判定",
    "no_disagreements": "没有分歧。", "judge_vs_human": "评审模型与人工",
    "judge_line": "评审校准 v{version}：在 {n} 个留出条目上 κ = {kappa}{adopted}",
    "no_judge": "尚未在此队列上校准评审模型。只能在命令行中校准：`flywheel judge calibrate "
    "evals/SUITE.yaml#CHECK --queue {queue}`，其中填入你的评测套件中的评审检查（见 docs/judge-calibration.md）。",
    "adopted": "（已采用）", "add_trace": "将此追踪加入新的审核队列", "trace": "追踪",
    "runs": "评测运行", "run": "运行", "suite": "套件", "target": "目标", "model": "模型",
    "pass_rate": "通过率", "cost": "费用", "date": "日期", "status": "状态",
    "no_runs_match": "没有符合筛选条件的评测运行。",
    "no_runs": "还没有评测运行：在 evals/ 中写一个评测套件并运行 "
    "`flywheel eval`（见 docs/evals.md），每次运行都会显示在这里。",
    "cases": "用例", "case": "用例", "repeats": "重复次数", "passes": "通过次数", "flaky": "不稳定", "failed": "失败",
    "passed": "通过", "all": "全部", "show": "显示", "check": "未通过的检查", "apply": "应用筛选",
    "output": "输出", "reference": "参考答案", "checks": "检查", "compare": "对比",
    "compare_runs": "对比两次运行", "base": "基线", "cand": "候选", "delta": "变化",
    "regressions_only": "只看退化", "regression": "退化", "fix": "修复", "same": "不变",
    "new": "新增", "missing": "缺失", "diff_outputs": "输出：基线 → 候选",
    "diff_reference": "候选输出与参考答案", "paired_test": "通过率变化的配对检验",
    "mcnemar": "McNemar 精确检验（不一致用例上的符号检验）", "regressions": "退化", "fixes": "修复",
    "paired_ci": "变化的配对自助法 95% 区间", "p_value": "p",
    "pairwise_judge": "成对评审", "no_comparison": "没有这两次运行的已存成对对比。只能在命令行中评审："
    "`flywheel compare {base} {cand}`。",
    "outcome": "结果", "question": "问题", "judge_reason": "评审理由",
    "first_page": "← 第一页", "next_page": "下一页 →", "prev_page": "← 上一页", "rows_of": "第 {a}–{b} 行，共 {n} 行",
    "invalid": "无效", "export": "导出", "case_rule": "一个用例的所有重复都通过才算通过。",
    "open": "打开", "queue_meta": "（{kind}，{label} {n}）",
    "kind_binary": "二元", "kind_pairwise": "成对",
    "strategy_mixed": "混合", "strategy_random": "随机", "strategy_negative-feedback": "负面反馈",
    "strategy_guard-triggered": "护栏触发", "strategy_low-score": "低分", "strategy_uncertain": "不确定",
    "strategy_new-topic": "新话题", "strategy_explicit": "指定追踪",
    "outcome_tie": "平局", "outcome_skipped": "跳过", "outcome_error": "出错",
    "err_whole_number": "须为 {low} 到 {high} 之间的整数", "err_kind": "二元或成对",
    "err_strategy": "须为以下之一：{choices}", "err_name_new": "“new”是此表单的地址，请换一个名称",
    "err_name": "只能使用英文字母、数字和 _.:-（以字母或数字开头，最多 200 个字符），例如 daily-0612",
    "err_ids_pairwise": "追踪 ID 只能建二元队列；成对队列由抽样生成",
    "err_no_traces": "还没有可审核的追踪：先通过 `flywheel serve` 发送一些请求（或运行 `flywheel ask`），再创建队列。",
    "shared_queues": "有 {n} 个队列创建时未指定租户（`flywheel review sample` 未加 `--tenant`），涵盖所有租户，"
    "只有管理员密钥或本地开放模式下的服务会列出它们。要为此密钥的租户建队列：`flywheel review sample --tenant {tenant}`，"
    "或在此处“新建队列”。",
}

TEXT = {"en": EN, "zh": ZH}


def Text(lang: str) -> i18n.Translator:
    """`tx("key", **values)` in the review and evals templates."""
    return i18n.Translator(lang, TEXT)
