"""UI text of the metrics, monitors, prompts and playground pages (English and Chinese), on top of the dashboard's
own (flywheel.web.i18n): templates call `tx("key")`, which looks here first and falls back to the shared table."""

from __future__ import annotations

from flywheel.web import i18n

EN: dict[str, str] = {
    "metrics": "Metrics", "monitors": "Monitors", "prompts": "Prompts", "playground": "Playground",
    "window": "Window", "group_by": "Group by", "no_group": "(none)", "since": "Since", "until": "Until",
    "apply": "Apply", "invalid": "invalid", "export": "Export", "no_data": "no data",
    "partial": "Partial: the time budget ran out; windows before {since} show only their SQL totals (traces, errors, "
    "cost, tokens). Pick a longer window or a shorter range for the rest.",
    "took": "computed in {ms} ms", "click_point": "Click a point to open its traces.", "n_rows": "{n} windows × groups",
    "m_volume": "Traces", "m_latency_p50_ms": "Latency p50 (ms)", "m_latency_p95_ms": "Latency p95 (ms)",
    "m_cost_usd": "Cost (USD)", "m_online_pass_rate": "Online checks pass rate",
    "m_negative_feedback_rate": "Negative feedback rate", "m_guard_trigger_rate": "Guard trigger rate",
    "m_cache_hit_rate": "Cache hit rate", "m_error_rate": "Error rate",
    "rules": "Alert rules", "no_rules": "No alert rules (`monitor.alerts` in flywheel.yaml).",
    "rule": "Rule", "metric": "Metric", "bound": "Bound", "relative_to": "Relative to", "where": "Where",
    "state": "Now", "firing": "firing", "ok": "ok", "no_window": "no traces", "value": "Value",
    "fired": "Alerts sent", "no_fired": "No alert has been sent.", "sent_at": "Sent", "message": "Message",
    "group": "Group", "window_start": "Window",
    "drift": "Drift", "drift_loading": "Computing drift…", "reference": "Reference",
    "reference_help": "window:30d (the 30 days before Since), window:2026-10-01..2026-10-06 or eval:SUITE; "
    "empty: window:30d.",
    "drift_scoped": "Drift is computed over every tenant's traces; only an admin sees it.",
    "input_drift": "Input drift", "output_drift": "Output drift", "distance": "distance", "p_value": "p",
    "drifted": "drifted", "stable": "stable", "not_tested": "not tested", "n": "Traces",
    "new_clusters": "New topics", "vanished_clusters": "Vanished topics", "keywords": "Keywords",
    "examples": "Examples", "drift_alerts": "Drift alerts", "psi_shifted": "Shifted fields",
    "prompt": "Prompt", "versions": "Versions", "labels": "Labels", "latest": "Latest", "created": "Created",
    "no_prompts": "No stored prompt versions yet: run a variant on the Playground page and save it (Save as a new prompt "
    "version), or store the project's prompt files with `flywheel prompts register`.", "version": "Version",
    "description": "Description", "diff": "Diff", "compare": "Compare", "no_changes": "The two versions are the same.",
    "files_only": "Prompt files not registered yet:", "field": "Field", "open_playground": "Open in playground",
    "variants": "Variants", "variant": "Variant", "model": "Model", "raw_prompt": "(no prompt: system + input)",
    "input": "Input", "system": "System", "run": "Run", "answer": "Answer", "tokens": "Tokens", "cost": "Cost",
    "latency": "Latency", "trace": "Trace", "playground_help": "Runs each variant (prompt version × model) on the same"
    " input through the gateway; every call is traced.",
    "save_version": "Save as a new prompt version", "prompt_name": "Prompt name", "template": "Template",
    "save": "Save", "saved": "Saved {name} version {version}.", "already": "That version was stored already.",
    "save_forbidden": "A tenant key cannot change the project's prompts.", "from_trace": "Prefilled from trace",
    "variant_error": "failed", "based_on": "Based on",
    "run_forbidden": "A tenant key cannot run the playground (its model list, budget and rate limit apply on the API"
    " only); log in with the admin key.",
}

ZH: dict[str, str] = {
    "metrics": "指标", "monitors": "监控", "prompts": "提示词", "playground": "试验场",
    "window": "时间窗", "group_by": "分组", "no_group": "（不分组）", "since": "起始时间", "until": "截止时间",
    "apply": "应用筛选", "invalid": "无效", "export": "导出", "no_data": "无数据",
    "partial": "部分结果：时间预算已用完；{since} 之前的时间窗只有 SQL 汇总（追踪数、错误、费用、令牌）。"
    "请选更长的时间窗或更短的时间范围查看其余指标。",
    "took": "计算耗时 {ms} 毫秒", "click_point": "点击数据点可打开对应的追踪。", "n_rows": "{n} 个时间窗 × 分组",
    "m_volume": "追踪数", "m_latency_p50_ms": "延迟 p50（毫秒）", "m_latency_p95_ms": "延迟 p95（毫秒）",
    "m_cost_usd": "费用（美元）", "m_online_pass_rate": "在线检查通过率",
    "m_negative_feedback_rate": "负面反馈率", "m_guard_trigger_rate": "护栏触发率",
    "m_cache_hit_rate": "缓存命中率", "m_error_rate": "错误率",
    "rules": "告警规则", "no_rules": "没有告警规则（flywheel.yaml 中的 `monitor.alerts`）。",
    "rule": "规则", "metric": "指标", "bound": "阈值", "relative_to": "相对基线", "where": "范围",
    "state": "当前", "firing": "告警中", "ok": "正常", "no_window": "无追踪", "value": "值",
    "fired": "已发送的告警", "no_fired": "尚未发送任何告警。", "sent_at": "发送时间", "message": "内容",
    "group": "分组", "window_start": "时间窗",
    "drift": "漂移", "drift_loading": "正在计算漂移…", "reference": "参照",
    "reference_help": "window:30d（起始时间之前的 30 天）、window:2026-10-01..2026-10-06 或 eval:SUITE；"
    "留空即 window:30d。",
    "drift_scoped": "漂移基于所有租户的追踪计算；只有管理员可以查看。",
    "input_drift": "输入漂移", "output_drift": "输出漂移", "distance": "距离", "p_value": "p",
    "drifted": "已漂移", "stable": "稳定", "not_tested": "未检验", "n": "追踪数",
    "new_clusters": "新话题", "vanished_clusters": "消失的话题", "keywords": "关键词",
    "examples": "示例", "drift_alerts": "漂移告警", "psi_shifted": "分布变化的字段",
    "prompt": "提示词", "versions": "版本", "labels": "标签", "latest": "最新", "created": "创建时间",
    "no_prompts": "还没有已存储的提示词版本：在“试验场”页运行一个变体并保存（另存为新的提示词版本），"
    "或用 `flywheel prompts register` 存入项目的提示词文件。", "version": "版本",
    "description": "说明", "diff": "差异", "compare": "对比", "no_changes": "两个版本相同。",
    "files_only": "尚未登记的提示词文件：", "field": "字段", "open_playground": "在试验场中打开",
    "variants": "变体", "variant": "变体", "model": "模型", "raw_prompt": "（不用提示词：系统消息 + 输入）",
    "input": "输入", "system": "系统消息", "run": "运行", "answer": "回答", "tokens": "令牌", "cost": "费用",
    "latency": "延迟", "trace": "追踪", "playground_help": "每个变体（提示词版本 × 模型）都用同一输入经网关调用；每次调用都有追踪。",
    "save_version": "另存为新的提示词版本", "prompt_name": "提示词名称", "template": "模板",
    "save": "保存", "saved": "已保存 {name} 的版本 {version}。", "already": "该版本已存在。",
    "save_forbidden": "租户密钥不能修改项目的提示词。", "from_trace": "已从追踪预填",
    "variant_error": "失败", "based_on": "基于",
    "run_forbidden": "租户密钥不能使用试验场（其模型列表、预算和速率限制只在 API 上生效）；请用管理员密钥登录。",
}

TEXT = {"en": EN, "zh": ZH}


def Text(lang: str) -> i18n.Translator:
    """`tx("key", **values)` in the metrics, monitors, prompts and playground templates."""
    return i18n.Translator(lang, TEXT)
