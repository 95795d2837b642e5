"""summarize: map-reduce summarisation over several documents (one map call per piece, reduce in batches until one
summary is left), the app kind over input text or searched passages, and item-by-item resume."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from workflows_support import chat_requests, gateway, last_user

from flywheel.types import Chunk, Hit
from flywheel.workflows import WorkflowRunner, WorkflowServices
from flywheel.workflows.summarize import SummarizeApp, split_pieces, summarize_documents, summarize_workflow

DOCS = [f"Document {n}. " + " ".join(f"Fact {n}.{i} is about tides and moons." for i in range(3)) for n in range(5)]


def script(llm):
    """Map calls answer `S<n>` for document n; reduce calls list what they combined."""
    def part(body):
        m = re.search(r"Document (\d+)", last_user(body))
        return f"S{m.group(1)}"

    def combine(body):
        return "+".join(re.findall(r"\] (\S+)", last_user(body)))

    llm.add(r"^Summarise this text", part)
    llm.add(r"^These are summaries", combine)


def test_map_reduce_over_several_documents(llm):
    script(llm)
    result = summarize_documents(DOCS, services=WorkflowServices(gateway=gateway(llm)), batch=2, max_words=40)
    assert result.status == "done"
    requests = [last_user(r) for r in chat_requests(llm)]
    maps = [r for r in requests if r.startswith("Summarise")]
    reduces = [r for r in requests if r.startswith("These are")]
    assert len(maps) == 5 and all("at most 40 words" in r for r in maps)
    # 5 summaries in batches of 2: 3 calls → 3 results, 2 calls → 2, 1 call → 1; every summary kept, in order
    assert len(reduces) == 3 + 2 + 1
    assert result.output == "S0+S1+S2+S3+S4"


def test_pieces_split_long_documents():
    long = "\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(10))
    pieces = split_pieces([long, "short one"], chunk_tokens=100)
    assert len(pieces) > 3 and pieces[-1] == "short one"
    assert all(len(p) < 1000 for p in pieces)


def test_a_map_killed_midway_resumes_item_by_item(llm, store):
    script(llm)
    seen = []
    original = llm.rules

    def failing(body):
        seen.append(1)
        if len(seen) == 4:
            raise RuntimeError("upstream fell over")
        return original[0].reply(body)

    llm.clear_rules()
    llm.add(r"^Summarise this text", failing)
    llm.add(r"^These are summaries", original[1].reply)
    wf = summarize_workflow(batch=10)
    services = WorkflowServices(gateway=gateway(llm), store=store)
    with pytest.raises(Exception):  # noqa: B017 - the fake answers 500 when a reply raises
        WorkflowRunner(wf, services).run({"documents": DOCS}, run_id="sum-1")
    assert len(seen) == 4
    result = WorkflowRunner(wf, services).run(run_id="sum-1", resume=True)
    assert result.status == "done" and result.output == "S0+S1+S2+S3+S4"
    assert len(seen) == 4 + 2  # only the item that failed and the one never reached


def test_the_app_summarises_its_input(llm):
    script(llm)
    app = SummarizeApp(gateway=gateway(llm), chunk_tokens=64, batch=4, name="digest")
    answer = app.run("\n\n".join(DOCS))
    assert not answer.refused and answer.app == "digest"
    assert answer.text.startswith("S0") and answer.usage.total_tokens > 0


def test_the_app_summarises_searched_passages_and_lists_them(llm):
    script(llm)
    hits = [Hit(chunk=Chunk(id=f"c{n}", doc_id="d", text=DOCS[n], source=f"doc{n}.md"), score=1.0 - n / 10)
            for n in range(3)]
    retriever = SimpleNamespace(search=lambda query, k=None, tenant="default", filters=None, mode="hybrid": hits[:k])
    app = SummarizeApp(gateway=gateway(llm), retriever=retriever, source="search", k=2)
    answer = app.run("tides")
    assert answer.text == "S0+S1"
    assert [s.source for s in answer.sources] == ["doc0.md", "doc1.md"]
    empty = SummarizeApp(gateway=gateway(llm), retriever=SimpleNamespace(search=lambda *a, **k: []), source="search")
    refused = empty.run("volcanoes")
    assert refused.refused and refused.refusal == "no_passage"
