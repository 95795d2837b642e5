"""Synthetic traffic for the drift and skew tests: template questions over keyword topics (English and Chinese),
written to a store as traces with one root span each."""

from __future__ import annotations

import random
import uuid
from pathlib import Path
from typing import Any

TOPICS = {
    "billing": ["invoice", "refund", "payment", "credit card", "subscription", "charge", "receipt", "billing address"],
    "deploy": ["docker image", "kubernetes", "deployment", "container", "helm chart", "rollback", "load balancer"],
    "garden": ["tomato plants", "compost", "watering schedule", "seeds", "soil", "pruning roses", "garden pests"],
    "天气": ["明天的天气", "下雨", "气温", "台风", "空气质量", "天气预报", "降雪"],
    "股票": ["股票价格", "基金", "涨停", "市盈率", "分红", "证券账户", "大盘指数"],
    "医院": ["挂号", "医生", "体检报告", "住院", "医保报销", "门诊时间", "药房"],
}
EN = ["How do I fix the {a} for my {b}?", "Why is my {a} failing after the {b} change?",
      "Can you explain the {a} and {b} settings?", "What happens to the {a} when the {b} is updated?"]
ZH = ["请问{a}和{b}有什么关系？", "{a}的情况怎么查询{b}？", "为什么{a}会影响{b}？", "我想了解{a}以及{b}。"]
ANSWER_EN = "The {a} is handled on the settings page [1]; see the section on {b} for details."
ANSWER_ZH = "{a}的相关说明在设置页面[1]，{b}请参见对应章节。"
START = 1_790_812_800.0  # 2026-10-01T00:00:00Z
DAY = 86400.0


def question(topic: str, rnd: random.Random) -> tuple[str, str]:
    a, b = rnd.sample(TOPICS[topic], 2)
    zh = not topic.isascii()
    q = rnd.choice(ZH if zh else EN).format(a=a, b=b)
    return q, (ANSWER_ZH if zh else ANSWER_EN).format(a=a, b=b)


def traffic(mix: dict[str, float], n: int, start: float, width: float, rnd: random.Random) -> list[dict[str, Any]]:
    """n traces spread evenly over [start, start + width), topics drawn from `mix`."""
    out = []
    for i in range(n):
        topic = rnd.choices(list(mix), weights=list(mix.values()))[0]
        q, a = question(topic, rnd)
        out.append({"trace_id": uuid.UUID(int=rnd.getrandbits(128)).hex, "question": q, "answer": a,
                    "topic": topic, "started_at": start + (i + 0.5) * width / n})
    return out


def write_project(root: Path) -> Path:
    (root / "flywheel.yaml").write_text(
        "store: sqlite:///.flywheel/flywheel.db\nmodels:\n  small: {provider: extractive}\n"
        "retrieval: {embedder: none}\n", encoding="utf-8")
    return root


def write_suite(root: Path, name: str, questions: list[str]) -> Path:
    path = root / "evals" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"name: {name}", "target: model:small", 'prompt: "Q: {{question}}"', "cases:"]
    for i, q in enumerate(questions):
        lines += [f"  - id: c{i}", f"    vars: {{question: \"{q}\"}}",
                  "    checks: [{max_words: 50}, {not-contains: London}, {contains: the}]"]
    if not questions:
        lines[-1] = "cases: []"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
