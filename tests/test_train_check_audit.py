"""`flywheel train-check` on queues a user really has: Chinese texts, a queue labelled with one verdict only, and a
held-out part too small to hold both verdicts."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from click.testing import CliRunner
from review_support import add_traces

import flywheel.cli.train_check  # noqa: F401 - registers `flywheel train-check`
from flywheel.cli import main
from flywheel.feedback import queues
from flywheel.store import Store

CITIES = ["北京", "上海", "广州", "深圳", "杭州", "南京", "成都", "武汉", "西安", "重庆", "天津", "苏州"]
GOOD = "{c}的天气预报：明天晴，最高气温二十度。"
BAD = "抱歉，我不太清楚{c}的情况，请稍后再试。"


def _world(root: Path, verdicts: list[str]) -> Path:
    (root / "flywheel.yaml").write_text(
        textwrap.dedent("""\
        models:
          gpt: {provider: openai_compat, base_url: "http://127.0.0.1:9/v1", model: fake-app, max_retries: 0}
        retrieval: {embedder: none}
        cache: {exact: false}
        """),
        encoding="utf-8",
    )
    from flywheel.config import Project

    project = Project.load(root)
    specs = [
        {
            "input": f"{CITIES[i % len(CITIES)]}明天天气怎么样？（{i}）",
            "output": (GOOD if v == "pass" else BAD).format(c=CITIES[i % len(CITIES)]),
        }
        for i, v in enumerate(verdicts)
    ]
    store = Store.open(project.store_url)
    try:
        ids = add_traces(store, specs)
        q = queues.create_queue(store, "zh", kind="binary", overlap=1, trace_ids=ids)
        for it in queues.items(store, q):
            queues.label(store, it.id, "ana", verdicts[ids.index(it.trace_id)])
    finally:
        store.close()
    return root


def _run(root: Path, *args: str):
    return CliRunner().invoke(main, ["--project", str(root), *args])


def test_a_queue_with_one_verdict_says_so_instead_of_too_few(tmp_path):
    root = _world(tmp_path, ["pass"] * 24)
    result = _run(root, "train-check", "weather", "--queue", "zh")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "all 24 labelled item(s) are pass" in result.output and "too few" not in result.output
    assert not (root / ".flywheel" / "checks" / "weather").exists()


def test_chinese_texts_train_and_a_one_sided_held_out_part_is_warned_about(tmp_path):
    root = _world(tmp_path, ["pass" if i % 2 else "fail" for i in range(24)])
    result = _run(root, "train-check", "weather", "--queue", "zh", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (
        report["heldout"]["kappa"] == 1.0 and report["warnings"] == []
    )  # the two answers' words separate them
    small = _run(root, "train-check", "weather", "--queue", "zh", "--heldout", "0.04")  # one held-out item
    assert small.exit_code == 0, small.output
    warning = " ".join(small.stderr.split())
    assert "warning: the held-out part (1 item(s)) holds no" in warning and "--heldout (now 0.04)" in warning
