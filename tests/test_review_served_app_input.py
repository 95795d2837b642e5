"""A docs app served over HTTP (`POST /v1/apps/NAME`, or `app:NAME` on chat completions) is traced under a
`server …` root span that records no inputs; the reviewer must still see the user's question (what the app span
and the trace's preview hold), not the whole retrieval prompt ("Sources: … Question: …") sent to the model, so a
promoted or exported case asks the question and not the prompt."""

from __future__ import annotations

from flywheel.feedback.content import _content

PROMPT = [{"role": "system", "content": "Answer from the sources."},
          {"role": "user", "content": "Sources:\n\n### [1] docs/keys.md Backups\nBackups are kept 30 days.\n\n"
                                      "Question: 备份保留多久？\n\nAnswer using only the sources above."}]


def _served_app_trace() -> list[dict]:
    """The spans `flywheel serve` stores for `POST /v1/apps/docs_qa` (as read back from the store)."""
    def span(sid, parent, name, kind, start, inputs=None, outputs=None):
        return {"span_id": sid, "parent_id": parent, "name": name, "kind": kind, "start_ns": start,
                "inputs": inputs, "outputs": outputs}

    return [span("r", None, "server /v1/apps/docs_qa", "other", 1, None, {"text": "保留 30 天 [1]。"}),
            span("a", "r", "docs_qa", "app", 2, {"question": "备份保留多久？"}, {"answer": "保留 30 天 [1]。"}),
            span("s", "a", "retrieval.search", "retrieval", 3, {"query": "备份保留多久？"},
                 [{"chunk_id": "c1", "source": "docs/keys.md", "score": 0.8}]),
            span("g", "a", "gateway.chat", "llm", 4, {"messages": PROMPT}, {"text": "保留 30 天 [1]。"}),
            span("m", "g", "chat fake-model", "llm", 5, {"messages": PROMPT}, {"text": "保留 30 天 [1]。"})]


def test_a_served_app_trace_is_reviewed_with_the_users_question():
    got = _content(_served_app_trace(), "备份保留多久？", "保留 30 天 [1]。")
    assert got["input"] == "备份保留多久？"
    assert got["output"] == "保留 30 天 [1]。" and got["prompt"] == PROMPT
    assert got["sources"] == [{"chunk_id": "c1", "source": "docs/keys.md", "score": 0.8}]

