"""What a reviewer sees of a trace, read from its stored spans: the input, the answer, the exact final prompt
(the messages of the last model call that produced the answer: a re-ask's or fallback's when there was one, never
an LLM judge's) and the retrieved sources with their scores (and text, when the chunks are in this store)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

if TYPE_CHECKING:
    from flywheel.store import Store

_INPUT_KEYS = ("question", "input", "query", "message", "prompt", "text")
_OUTPUT_KEYS = ("text", "answer", "output", "content")
_ANSWERING_GUARD_SPANS = ("guard.reask", "guard.fallback")  # their model calls produce the answer shown


def trace_contents(store: Store, trace_ids: list[str]) -> dict[str, dict[str, Any]]:
    """{trace_id: {"input", "output", "prompt", "sources"}} for the traces found."""
    ids = list(dict.fromkeys(trace_ids))
    if not ids:
        return {}
    st, tt, ch = store.table("spans"), store.table("traces"), store.table("chunks")
    spans: dict[str, list[dict[str, Any]]] = {}
    previews: dict[str, tuple[Any, Any]] = {}
    with store.connect() as conn:
        for i in range(0, len(ids), 200):
            chunk = ids[i:i + 200]
            for r in conn.execute(select(st.c.span_id, st.c.trace_id, st.c.parent_id, st.c.name, st.c.kind,
                                         st.c.start_ns, st.c.inputs, st.c.outputs)
                                  .where(st.c.trace_id.in_(chunk)).order_by(st.c.start_ns)).mappings():
                spans.setdefault(r["trace_id"], []).append(dict(r))
            for tid, preview_in, preview_out in conn.execute(
                    select(tt.c.trace_id, tt.c.input_preview, tt.c.output_preview).where(tt.c.trace_id.in_(chunk))):
                previews[tid] = (preview_in, preview_out)
        out: dict[str, dict[str, Any]] = {}
        for tid in ids:
            if tid in spans or tid in previews:
                out[tid] = _content(spans.get(tid, []), *previews.get(tid, (None, None)))
        chunk_ids = {s["chunk_id"] for c in out.values() for s in c["sources"] if s.get("chunk_id")}
        texts = dict(conn.execute(select(ch.c.id, ch.c.text).where(ch.c.id.in_(list(chunk_ids)))).all()) \
            if chunk_ids else {}
    for c in out.values():
        for s in c["sources"]:
            if s.get("chunk_id") in texts and not s.get("text"):
                s["text"] = texts[s["chunk_id"]]
    return out


def _content(spans: list[dict[str, Any]], input_preview: Any, output_preview: Any) -> dict[str, Any]:
    by_id = {s["span_id"]: s for s in spans}
    root = next((s for s in spans if s["parent_id"] is None or s["parent_id"] not in by_id), None)
    top = root  # a `server …` root records no inputs: its first child (the app span) holds the user's question
    while top is not None and not top["inputs"]:
        top = next((s for s in spans if s["parent_id"] == top["span_id"]), None)
    text_in = _pick(top["inputs"], _INPUT_KEYS, role="user") if top else None
    text_out = _pick(root["outputs"], _OUTPUT_KEYS) if root else None
    answering = [s for s in spans if not _under_judge(s, by_id)]  # the root too: an OTLP trace may be one llm span
    llm = [s for s in answering if s["kind"] == "llm"]
    leaves = [s for s in llm if not any(c["parent_id"] == s["span_id"] and c["kind"] == "llm" for c in llm)]
    final = leaves[-1] if leaves else None
    prompt = final["inputs"].get("messages") if final and isinstance(final["inputs"], dict) else None
    retrieved = [s for s in answering if s["kind"] == "retrieval"]
    sources = retrieved[-1]["outputs"] if retrieved and isinstance(retrieved[-1]["outputs"], list) else []
    if text_in is None and isinstance(prompt, list):
        users = [m.get("content") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        text_in = users[-1] if users and isinstance(users[-1], str) else None
    if text_out is None and final is not None:
        text_out = _pick(final["outputs"], _OUTPUT_KEYS)
    if text_in is None and not input_preview and root and root["inputs"]:
        text_in = json.dumps(root["inputs"], ensure_ascii=False)  # an unknown shape, shown as it was recorded
    return {"input": text_in if text_in is not None else (input_preview or ""),
            "output": text_out if text_out is not None else (output_preview or ""),
            "prompt": [m for m in prompt if isinstance(m, dict)] if isinstance(prompt, list) else [],
            "sources": [dict(s) if isinstance(s, dict) else {"text": str(s)} for s in sources]}


def _under_judge(span: dict[str, Any], by_id: dict[str, dict[str, Any]]) -> bool:
    """Inside a guard or check span (an LLM judge's call), unless that span is a re-ask or fallback."""
    parent = by_id.get(span["parent_id"] or "")
    seen = 0
    while parent is not None and seen < 100:
        if parent["kind"] in ("guard", "check") and parent["name"] not in _ANSWERING_GUARD_SPANS:
            return True
        parent, seen = by_id.get(parent["parent_id"] or ""), seen + 1
    return False


def _pick(value: Any, keys: tuple[str, ...], role: str | None = None) -> str | None:
    """A text under one of `keys`, else the content of the last message (of `role`, when given)."""
    if isinstance(value, str):
        return value
    if role is None and isinstance(value, list) and value and isinstance(value[-1], dict) and "role" in value[-1]:
        content = value[-1].get("content")  # a model span received over OTLP: its answer's messages
        return content if isinstance(content, str) else None
    if isinstance(value, dict):
        for key in keys:
            if isinstance(value.get(key), str):
                return value[key]
        messages = value.get("messages")
        if isinstance(messages, list):  # inputs: the last user turn (after a tool call, the last message is its result)
            turns = [m for m in messages if isinstance(m, dict) and (role is None or m.get("role", "user") == role)]
            content = turns[-1].get("content") if turns else None
            return content if isinstance(content, str) else None
    return None
