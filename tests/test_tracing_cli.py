"""`flywheel traces` on a real terminal width: the question readable at 80 columns (CJK-aware), incomplete
traces listed, and `traces show` with each span's inputs."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from rich.cells import cell_len

from flywheel.cli import main
from flywheel.cli.traces import fit
from flywheel.config import Project
from flywheel.store import Store
from flywheel.tracing import attach_store, tracer

EN = "How do I pin a model version so that a provider update never changes my answers overnight?"
ZH = "如何在配置文件里固定模型版本，避免供应商更新以后答案在一夜之间发生变化？请给出具体步骤。"


def _answer(question: str) -> str:
    sent = {"messages": [{"role": "system", "content": "Answer from the context."},
                         {"role": "user", "content": question}], "params": {"model": "small", "temperature": 0.1}}
    with tracer.span("docs_qa", kind="app", inputs={"question": question}, **{"flywheel.app": "docs_qa"}) as app:
        with (tracer.span("gateway.chat", kind="llm", inputs={"messages": [{"role": "user", "content": question}]}),
              tracer.span("chat small", kind="llm", inputs=sent) as attempt):
            attempt.set(outputs="Set `version:` on the alias.")
        app.set(outputs={"answer": "Set `version:` on the alias."})
    return app.trace_id


def _killed_mid_request(question: str) -> str:
    """A trace whose root never ends, as when the process is killed: only its children reach the store."""
    root, token = tracer.start("docs_qa", "app", {"question": question})
    try:
        with tracer.span("input_guards", kind="guard", inputs={"text": question}) as g:
            g.set(outputs="ok")
        with tracer.span("retrieve", kind="retrieval", inputs={"query": question}) as r:
            r.set(outputs=["c1"])
    finally:
        from flywheel.tracing.tracer import _current

        _current.reset(token)
    return root.trace_id


@pytest.fixture
def project(tmp_path):
    project = Project(tmp_path)
    with Store.open(project.store_url) as store:
        detach = attach_store(store)
        ids = {"en": _answer(EN), "zh": _answer(ZH), "killed": _killed_mid_request("Why did it stop?")}
        store.flush()
        store.writer.count_dropped("tracing.spans", 3, "queue_full")
        detach()
    return tmp_path, ids


def _run(path, *args, columns: int = 80):
    out = CliRunner().invoke(main, ["--project", str(path), *args], env={"COLUMNS": str(columns)})
    assert out.exit_code == 0, out.output
    return out.output


def test_the_list_fits_80_columns_and_shows_the_question(project):
    path, ids = project
    lines = _run(path, "traces").splitlines()
    table = [ln for ln in lines if not ln.startswith("3 span")]
    assert all(cell_len(ln) <= 80 for ln in table), [ln for ln in table if cell_len(ln) > 80]
    header = table[0]
    assert header.split() == ["time", "trace", "latency", "status", "question"]
    en = next(ln for ln in table if ids["en"][:8] in ln)
    zh = next(ln for ln in table if ids["zh"][:8] in ln)
    assert "How do I pin a model version" in en and en.endswith("…")
    assert "如何在配置文件里固定模型版本" in zh and zh.endswith("…")
    # the question column starts at the same terminal cell on every row, whatever the script
    col = cell_len(header[:header.index("question")])
    assert cell_len(en[:en.index("How")]) == col and cell_len(zh[:zh.index("如何")]) == col


def test_incomplete_traces_are_listed_and_shown(project):
    path, ids = project
    out = _run(path, "traces")
    killed = next(ln for ln in out.splitlines() if ids["killed"][:8] in ln)
    assert "incomplete" in killed and "Why did it stop?" in killed
    assert "3 span(s) were dropped" in out
    only = _run(path, "traces", "--status", "incomplete", "--json")
    assert [r["trace_id"] for r in json.loads(only)] == [ids["killed"]]
    tree = _run(path, "traces", "show", ids["killed"][:8])
    assert "incomplete" in tree and "input_guards" in tree and "retrieve" in tree


def test_show_prints_the_span_tree_with_each_spans_inputs(project):
    path, ids = project
    tree = _run(path, "traces", "show", ids["en"], columns=200).splitlines()
    attempt = next(i for i, ln in enumerate(tree) if "chat small" in ln)
    assert tree[attempt].startswith("│  ") or tree[attempt].lstrip("│ ").startswith("└─")  # nested twice
    shown_in = tree[attempt + 1]
    assert "in:" in shown_in and EN[:40] in shown_in and "2 messages" in shown_in and "temperature=0.1" in shown_in
    assert "out: Set `version:` on the alias." in tree[attempt + 2]
    assert any("in:" in ln and EN[:40] in ln for ln in tree[:attempt])  # the app span's question too
    narrow = _run(path, "traces", "show", ids["zh"])
    assert all(cell_len(ln) <= 80 for ln in narrow.splitlines())


def test_fit_counts_wide_characters_as_two_cells():
    assert fit("abc", 3) == "abc"
    assert fit("abcdef", 4) == "abc…"
    assert fit("数据飞轮", 5) == "数据…" and cell_len(fit("数据飞轮", 5)) == 5
    assert fit("数据飞轮", 8) == "数据飞轮"


def test_terminal_escapes_in_questions_are_neutralised(tmp_path):
    project = Project(tmp_path)
    with Store.open(project.store_url) as store:
        detach = attach_store(store)
        _answer("evil\x1b]0;owned\x07 question\x1b[2J")
        store.flush()
        detach()
    out = _run(tmp_path, "traces")
    assert "\x1b" not in out and "evil" in out
