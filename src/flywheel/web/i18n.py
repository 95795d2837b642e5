"""UI text in English and Chinese. The language comes from `?lang=` (then remembered in a cookie), else the
`fw_lang` cookie, else the browser's Accept-Language; English otherwise.

Add a string: one key in EN and the same key in ZH (a test checks both have the same keys).
"""

from __future__ import annotations

from typing import Any

LANGS = ("en", "zh")
COOKIE = "fw_lang"

EN: dict[str, str] = {
    "title": "flywheel", "traces": "Traces", "sessions": "Sessions", "users": "Users", "login": "Log in",
    "review": "Review", "evals": "Evals", "metrics": "Metrics", "monitors": "Monitors", "prompts": "Prompts",
    "playground": "Playground",
    "logout": "Log out", "api_key": "API key", "login_help": "Log in with a flywheel API key (`flywheel keys create --name NAME`).",
    "login_failed": "That key is not valid (unknown, malformed or revoked).",
    "filters": "Filters", "apply": "Apply", "clear": "Clear", "invalid": "invalid",
    "since": "Since", "until": "Until", "app": "App", "model": "Model", "prompt_version": "Prompt version",
    "tenant": "Tenant", "status": "Status", "latency_min": "Latency ≥ ms", "latency_max": "Latency ≤ ms",
    "cost_min": "Cost ≥ $", "cost_max": "Cost ≤ $", "feedback": "Feedback", "guard": "Guard action",
    "cache": "Cache", "search": "Search text", "session_id": "Session", "user_id": "User",
    "any": "any", "none": "none", "positive": "positive", "negative": "negative", "hit": "hit", "miss": "miss",
    "time": "Time", "trace": "Trace", "name": "Name", "latency": "Latency", "tokens": "Tokens", "cost": "Cost",
    "question": "Question", "answer": "Answer", "next_page": "Next page →", "first_page": "← First page",
    "no_traces": "No traces match these filters.", "facets": "Facets",
    "no_traces_yet": "No traces yet: every request to `flywheel serve` (the API under /v1) and every `flywheel ask` "
    "is traced and shows up here. `flywheel demo` fills a demo project in a minute.",
    "facets_partial": "Facet counts stopped at the time budget; not counted:",
    "saved_views": "Saved views", "save_view": "Save this view", "view_name": "View name",
    "view_name_needed": "A name for this view (not only spaces), at most 100 characters", "delete": "Delete",
    "export": "Export", "keys_help": "Keys: J / K move, Enter opens, / searches.",
    "span_tree": "Span tree and waterfall", "span": "Span", "kind": "Kind", "size": "Body size",
    "final_prompt": "Final prompt as sent", "no_prompt": "No model call in this trace.",
    "sources": "Retrieved sources", "score": "Score", "source": "Source", "chunk": "Chunk", "guards": "Guard actions",
    "action": "Action", "check": "Check", "labels": "Feedback and labels", "no_feedback": "No feedback yet.",
    "value": "Value", "comment": "Comment", "actor": "By", "span_body": "Span body",
    "click_span": "Click a span to load its inputs and outputs.", "inputs": "Inputs", "outputs": "Outputs",
    "reasoning": "Reasoning (the model's thinking)", "n_choices": "{n} choices", "choice": "choice {n}:",
    "attributes": "Attributes", "error": "Error", "more_spans": "Loading more spans…",
    "add_to_review": "Add to review queue", "replay": "Replay in playground",
    "not_found": "Not found", "back": "Back to traces", "turns": "Turns", "first": "First", "last": "Last",
    "errors": "Errors", "conversation": "Conversation", "no_sessions": "No sessions: requests carry no session id.",
    "users_capped": "The {n} most recently active users; find any other with the User filter of the traces page.",
    "turns_capped": "Showing the latest {n} turns only; the traces list filtered by this session pages through all of them.",
    "no_users": "No users: requests carry no user id (`user` in an OpenAI request, `metadata.user_id` in an "
    "Anthropic one).",
    "spans_shown": "spans", "of": "of", "incomplete_note": "Its root span never ended (the process stopped).",
    "language": "中文", "open_mode": "open (local, no keys)", "signed_in_as": "signed in as",
    "bad_csrf": "The form expired or came from another site; reload the page and try again.",
    "local_only": "This dashboard has no API keys yet, so it opens only at a local address: http://127.0.0.1:PORT/ui "
                  "or http://localhost:PORT/ui. To open it by another name, create a key (flywheel keys create "
                  "--name NAME) and log in with it.",
    # the trace page's actions (flywheel.web.review_pages): add the trace to a review queue or an eval suite
    "action_add_to_queue": "Add to review queue", "action_queue": "Queue", "action_add": "Add",
    "action_new_queue": "or a new queue", "action_add_to_suite": "Add to eval suite", "action_suite": "Suite file",
    "action_new_suite": "or a new file in evals/", "action_no_queue": "No binary queue of yours yet.",
    "action_added": "Added to {q}.", "action_skipped": "Already in a review queue: not added.",
    "action_written": "Case {c} written to {p}.",
    "action_admin_only": "Only an admin key writes the project's eval suites (they are shared by every tenant).",
    "action_in_suite": "Already in {p} (or a near-duplicate): nothing written.",
    # status values as displayed (Translator.status); URLs, filters and JSON keep the English value
    "status_ok": "ok", "status_error": "error", "status_incomplete": "incomplete", "status_finished": "finished",
    "status_failed": "failed", "status_running": "running", "status_interrupted": "interrupted",
    # guard actions and feedback values as displayed (Translator.label); the stored value in English
    "guard_pass": "pass", "guard_block": "block", "guard_redact": "redact", "guard_fix": "fix", "guard_reask": "reask",
    "guard_fallback": "fallback", "guard_refrain": "refrain", "guard_log-only": "log-only", "guard_error": "error",
    "fbname_thumbs": "thumbs", "fbvalue_up": "up", "fbvalue_down": "down", "fbsource_user": "user",
    "fbvalue_pass": "pass", "fbvalue_fail": "fail", "fbname_score": "score", "fbname_category": "category",
    "fbname_comment": "comment", "fbname_correction": "correction", "fbname_copied": "copied",
    "fbname_regenerated": "regenerated", "fbname_accepted": "accepted", "fbname_rejected": "rejected",
    "fbname_abandoned": "abandoned", "fbname_edited": "edited", "fbname_followup": "followup", "fbname_label": "label",
    "fbsource_annotator": "annotator", "fbsource_check": "check", "fbsource_judge": "judge",
    "fb_superseded": "replaced by a later vote",
    "colon": ": ",
}

ZH: dict[str, str] = {
    "title": "flywheel", "traces": "追踪", "sessions": "会话", "users": "用户", "login": "登录",
    "review": "审核", "evals": "评测", "metrics": "指标", "monitors": "监控", "prompts": "提示词",
    "playground": "试验场",
    "logout": "退出", "api_key": "API 密钥", "login_help": "用 flywheel API 密钥登录（`flywheel keys create --name NAME`）。",
    "login_failed": "该密钥无效（未知、格式错误或已吊销）。",
    "filters": "筛选", "apply": "应用筛选", "clear": "清除", "invalid": "无效",
    "since": "起始时间", "until": "截止时间", "app": "应用", "model": "模型", "prompt_version": "提示词版本",
    "tenant": "租户", "status": "状态", "latency_min": "延迟 ≥ 毫秒", "latency_max": "延迟 ≤ 毫秒",
    "cost_min": "费用 ≥ $", "cost_max": "费用 ≤ $", "feedback": "反馈", "guard": "护栏动作",
    "cache": "缓存", "search": "搜索文本", "session_id": "会话", "user_id": "用户",
    "any": "任意", "none": "无", "positive": "正面", "negative": "负面", "hit": "命中", "miss": "未命中",
    "time": "时间", "trace": "追踪", "name": "名称", "latency": "延迟", "tokens": "令牌", "cost": "费用",
    "question": "问题", "answer": "回答", "next_page": "下一页 →", "first_page": "← 第一页",
    "no_traces": "没有符合筛选条件的追踪。", "facets": "分面统计",
    "no_traces_yet": "还没有追踪：发给 `flywheel serve`（/v1 下的 API）的每个请求和每次 `flywheel ask` 都会被追踪并显示在这里。"
    "`flywheel demo` 一分钟即可生成一个示例项目。",
    "facets_partial": "分面统计在时间预算内停止；未统计：",
    "saved_views": "已保存视图", "save_view": "保存当前视图", "view_name": "视图名称",
    "view_name_needed": "为此视图起个名字（不能只有空格），最多 100 个字符", "delete": "删除",
    "export": "导出", "keys_help": "快捷键：J / K 移动，Enter 打开，/ 搜索。",
    "span_tree": "跨度树与瀑布图", "span": "跨度", "kind": "类型", "size": "内容大小",
    "final_prompt": "实际发送的最终提示词", "no_prompt": "此追踪中没有模型调用。",
    "sources": "检索到的来源", "score": "分数", "source": "来源", "chunk": "片段", "guards": "护栏动作",
    "action": "动作", "check": "检查", "labels": "反馈与标签", "no_feedback": "暂无反馈。",
    "value": "值", "comment": "评论", "actor": "提交者", "span_body": "跨度内容",
    "click_span": "点击一个跨度以加载其输入和输出。", "inputs": "输入", "outputs": "输出",
    "reasoning": "推理（模型的思考过程）", "n_choices": "{n} 个选项", "choice": "选项 {n}：",
    "attributes": "属性", "error": "错误", "more_spans": "正在加载更多跨度…",
    "add_to_review": "加入审核队列", "replay": "在试验场中重放",
    "not_found": "未找到", "back": "返回追踪列表", "turns": "轮次", "first": "首次", "last": "最近",
    "errors": "错误", "conversation": "对话", "no_sessions": "没有会话：请求未携带会话 ID。",
    "users_capped": "仅列出最近活跃的 {n} 位用户；其他用户可在追踪页的“用户”筛选中查找。",
    "turns_capped": "仅显示最近的 {n} 轮；按此会话筛选的追踪列表可分页查看全部。",
    "no_users": "没有用户：请求未携带用户 ID（OpenAI 请求中的 `user`，Anthropic 请求中的 `metadata.user_id`）。",
    "spans_shown": "个跨度", "of": "/", "incomplete_note": "其根跨度从未结束（进程已停止）。",
    "language": "English", "open_mode": "开放模式（本机，无密钥）", "signed_in_as": "已登录：",
    "bad_csrf": "表单已过期或来自其他网站；请刷新页面后重试。",
    "local_only": "此控制台尚无 API 密钥，所以只能通过本机地址打开：http://127.0.0.1:端口/ui 或 http://localhost:端口/ui。"
                  "要通过其他名称打开，请创建密钥（flywheel keys create --name NAME）并用它登录。",
    "action_add_to_queue": "加入审核队列", "action_queue": "队列", "action_add": "加入",
    "action_new_queue": "或新建队列", "action_add_to_suite": "加入评测套件", "action_suite": "评测套件文件",
    "action_new_suite": "或 evals/ 下的新文件", "action_no_queue": "你还没有二元（通过 / 不通过）队列。",
    "action_added": "已加入 {q}。", "action_skipped": "已在某个审核队列中：未加入。",
    "action_written": "用例 {c} 已写入 {p}。",
    "action_admin_only": "只有管理员密钥可以写入项目的评测套件（所有租户共用）。",
    "action_in_suite": "{p} 中已有（或有近似重复）：未写入。",
    "status_ok": "正常", "status_error": "出错", "status_incomplete": "未完成", "status_finished": "已完成",
    "status_failed": "失败", "status_running": "运行中", "status_interrupted": "已中断",
    "guard_pass": "通过", "guard_block": "拦截", "guard_redact": "脱敏", "guard_fix": "修正", "guard_reask": "重新生成",
    "guard_fallback": "回退", "guard_refrain": "拒答", "guard_log-only": "仅记录", "guard_error": "出错",
    "fbname_thumbs": "赞/踩", "fbvalue_up": "赞", "fbvalue_down": "踩", "fbsource_user": "用户",
    # the other feedback names of docs/review.md as displayed; the stored name stays English
    "fbname_score": "评分", "fbname_category": "分类", "fbname_comment": "评论", "fbname_correction": "更正",
    "fbname_copied": "已复制", "fbname_regenerated": "重新生成", "fbname_accepted": "已采纳", "fbname_rejected": "已拒绝",
    "fbname_abandoned": "已放弃", "fbname_edited": "已编辑", "fbname_followup": "追问", "fbname_label": "审核标签",
    "fbvalue_pass": "通过", "fbvalue_fail": "不通过",
    "fbsource_annotator": "标注人", "fbsource_check": "检查", "fbsource_judge": "评审模型",
    "fb_superseded": "已被之后的投票取代",
    "colon": "：",
}

TEXT = {"en": EN, "zh": ZH}


def choose(query_lang: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The UI language: ?lang=, else the cookie, else the first supported Accept-Language entry, else en."""
    for value in (query_lang, cookie):
        if value in LANGS:
            return value  # type: ignore[return-value]
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh"
        if tag.startswith("en"):
            return "en"
    return "en"


class Translator:
    """`t("key")` in templates; a missing key shows the key itself (never an error page). A page group may add
    its own strings (`extra`: {"en": {…}, "zh": {…}}), looked up before the shared ones."""

    def __init__(self, lang: str, extra: dict[str, dict[str, str]] | None = None):
        self.lang = lang if lang in LANGS else "en"
        extra = extra or {}
        self.tables = [extra.get(self.lang) or {}, extra.get("en") or {}, TEXT[self.lang], EN]

    def __call__(self, key: str, **values: Any) -> str:
        text = next((t[key] for t in self.tables if t.get(key)), key)
        return text.format(**values) if values else text

    def status(self, value: str | None) -> str:
        """A status value as shown on a page (`ok` → 正常 in Chinese); the value itself when it has no entry.
        Only the displayed text: links, filters, CSS classes and JSON keep the English value."""
        return self.label("status", value)

    def label(self, kind: str, value: str | None) -> str:
        """A value of a fixed set as shown on a page (`kind_value` in the tables: a status, a sampling strategy,
        a judge's outcome); the value itself when it has no entry."""
        if value is None:
            return ""
        key = f"{kind}_{value}"
        return next((t[key] for t in self.tables if t.get(key)), value)
