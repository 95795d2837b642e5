"""Conversations (the OpenAI Conversations API) in the flywheel store: tables `conversations` and
`conversation_items` (flywheel/store/schema_conversations.py).

A conversation belongs to the tenant that created it; another tenant's id is exactly as absent as a missing one
(404). Its items are kept in the shape the API answers them: `message` (input_text parts, output_text for the
assistant), `function_call`, `function_call_output` and `reasoning` items, each with an id unique within the conversation. A
response's `reasoning` output item is a conversation item, as on OpenAI (listed and retrieved like any other, its
summary_text parts kept); it is never sent to a model again (`history` leaves it out, as /v1/responses drops a
reasoning item sent back), so a later turn on any model goes on without it.
Every string is scrubbed before it is stored by the same scrubber the traces use (secrets, the secret
environment values, `tracing.redact` patterns, and PII when `tracing.redact_pii` is on), so a conversation
continued later carries those values as their placeholders, as a continued response does.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import insert, select, update

from flywheel.server.errors import ApiError
from flywheel.server.responses_wire import ResponsesIn, chat_messages, summary_part
from flywheel.store.schema_conversations import conversation_items as items_t
from flywheel.store.schema_conversations import conversations as conv_t
from flywheel.text.secrets import scrub_secrets
from flywheel.tracing.redact import Redactor
from flywheel.tracing.tracer import tracer
from flywheel.types import Message

MAX_ADD = 20  # items per create call, as OpenAI
MAX_METADATA = 16
_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}


@dataclass
class Conversation:
    id: str
    tenant: str
    meta: dict[str, str]
    created_at: float

    def payload(self) -> dict[str, Any]:
        return {"id": self.id, "object": "conversation", "created_at": int(self.created_at),
                "metadata": self.meta}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def check_metadata(meta: dict[str, str] | None, param: str = "metadata") -> dict[str, str]:
    meta = meta or {}
    if len(meta) > MAX_METADATA:
        raise ApiError(400, f"metadata holds at most {MAX_METADATA} pairs, got {len(meta)}", param=param,
                       code="invalid_value")
    for key, value in meta.items():
        if len(key) > 64 or len(value) > 512:
            raise ApiError(400, f"metadata key {key[:64]!r}: keys are at most 64 characters, values 512",
                           param=f"{param}.{key[:64]}", code="invalid_value")
    return meta


def conversation_id(value: Any) -> str:
    """The id in `conversation` of a /v1/responses body: "conv_…" or {"id": "conv_…"}."""
    cid = value.get("id") if isinstance(value, dict) else value
    if not isinstance(cid, str) or not cid:
        raise ApiError(400, "conversation must be a conversation id (a string) or {\"id\": …}", param="conversation",
                       code="invalid_value")
    return cid


def _scrubber() -> Any:
    redactor = tracer.redactor
    return redactor.scrub_text if isinstance(redactor, Redactor) else scrub_secrets


def scrub(value: Any, scrub_text: Any = None) -> Any:
    """`value` with every string scrubbed (nothing cut: a conversation item is kept whole)."""
    scrub_text = scrub_text or _scrubber()
    if isinstance(value, str):
        return scrub_text(value.replace("\x00", "\ufffd"))
    if isinstance(value, dict):
        return {k.replace("\x00", "\ufffd"): scrub(v, scrub_text) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, scrub_text) for v in value]
    return value


def _parts(content: Any, role: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [_part({"type": "output_text" if role == "assistant" else "input_text", "text": content})]
    return [_part(p) for p in content]


def _part(part: dict[str, Any]) -> dict[str, Any]:
    kind = part["type"]
    if kind == "refusal":
        return {"type": "refusal", "refusal": part["refusal"]}
    if kind == "output_text":
        return {"type": "output_text", "text": part["text"], "annotations": part.get("annotations") or [],
                "logprobs": part.get("logprobs") or []}
    return {"type": kind, "text": part["text"]}


def normal_items(items: Any, param: str) -> list[dict[str, Any]]:
    """Input items (a string, or message / function_call / function_call_output / reasoning items, checked the
    way /v1/responses checks `input`, a bad one named as `param`.N) as conversation items, ids not yet given
    where the caller sent none."""
    if isinstance(items, str):
        items = [{"type": "message", "role": "user", "content": items}]
    summaries: dict[int, list[dict[str, Any]]] = {}  # each reasoning item's summary, checked once, kept as checked
    try:
        if not _only_reasoning(items):  # a turn's thinking alone is a valid addition, not a valid model input
            chat_messages(ResponsesIn(model="conversation", input=items))
        for i, item in enumerate(items):
            if isinstance(item, dict) and item.get("type") == "reasoning":
                summaries[i] = _summary(item, f"input.{i}")
    except ApiError as exc:
        if exc.param and exc.param.startswith("input"):
            exc.param = param + exc.param[len("input"):]
        raise
    out = []
    for i, item in enumerate(items):
        kind = item.get("type", "message")
        given = item.get("id")
        if kind == "reasoning":  # kept as OpenAI keeps it; `history` never sends it to a model
            new: dict[str, Any] = {"type": "reasoning", "summary": summaries[i], "status": "completed"}
        elif kind == "message":
            role = item["role"]
            new = {"type": "message", "role": role, "status": "completed",
                   "content": _parts(item.get("content"), role)}
        elif kind == "function_call":
            new = {"type": "function_call", "call_id": item["call_id"], "name": item["name"],
                   "arguments": item.get("arguments") or "{}", "status": "completed"}
        else:
            output = item.get("output")
            new = {"type": "function_call_output", "call_id": item["call_id"],
                   "output": output if output is not None else "", "status": "completed"}
        if isinstance(given, str) and 0 < len(given) <= 100:
            new["id"] = given
        out.append(new)
    return out


def _only_reasoning(items: list[Any]) -> bool:
    return all(isinstance(i, dict) and i.get("type") == "reasoning" for i in items)


def _summary(item: dict[str, Any], param: str) -> list[dict[str, Any]]:
    """A reasoning item's summary_text parts as kept (its text; an encrypted_content, only ever readable by the
    provider that wrote it, is not kept)."""
    summary = item.get("summary") or []
    if not isinstance(summary, list) or not all(
            isinstance(p, dict) and p.get("type") == "summary_text" and isinstance(p.get("text"), str) for p in summary):
        raise ApiError(400, "a reasoning item's `summary` must be a list of {type: summary_text, text}",
                       param=f"{param}.summary", code="invalid_value")
    return [summary_part(p["text"]) for p in summary]


def history(items: list[dict[str, Any]]) -> list[Message]:
    """A conversation's items as the gateway messages they stand for: its reasoning items are left out (the
    thinking is never sent to a model again, whichever model goes on)."""
    said = [i for i in items if i.get("type") != "reasoning"]
    return chat_messages(ResponsesIn(model="conversation", input=said)) if said else []


# ------------------------------------------------------------------ the store


async def create(state: Any, tenant: str, meta: dict[str, str], items: list[dict[str, Any]]) -> Conversation:
    conv = Conversation(new_id("conv"), tenant, meta, time.time())

    def write() -> None:
        with state.store.begin(write_first=True) as conn:
            conn.execute(insert(conv_t).values(id=conv.id, tenant=tenant, meta=meta, created_at=conv.created_at))
            _insert(conn, conv.id, items, fresh_on_duplicate=False)

    await asyncio.to_thread(write)
    return conv


async def find(state: Any, cid: str, tenant: str, param: str = "conversation_id") -> Conversation:
    """The conversation `cid` of `tenant`; another tenant's is exactly as absent as a missing one (404)."""
    def read() -> Any:
        with state.store.engine.connect() as conn:
            return conn.execute(select(conv_t).where(conv_t.c.id == cid[:64])).mappings().first()

    row = await asyncio.to_thread(read)
    if row is None or row["tenant"] != tenant or row["id"] != cid:
        raise ApiError(404, f"no conversation with id {cid!r} was found", param=param,
                       code="conversation_not_found")
    return Conversation(row["id"], row["tenant"], row["meta"] or {}, row["created_at"])


async def set_metadata(state: Any, conv: Conversation, meta: dict[str, str]) -> Conversation:
    def write() -> None:
        with state.store.begin(write_first=True) as conn:
            conn.execute(update(conv_t).where(conv_t.c.id == conv.id).values(meta=meta))

    await asyncio.to_thread(write)
    return Conversation(conv.id, conv.tenant, meta, conv.created_at)


async def delete(state: Any, conv: Conversation) -> None:
    """The conversation and all its items are gone (not only hidden)."""
    def write() -> None:
        with state.store.begin(write_first=True) as conn:
            conn.execute(sql_delete(items_t).where(items_t.c.conversation_id == conv.id))
            conn.execute(sql_delete(conv_t).where(conv_t.c.id == conv.id))

    await asyncio.to_thread(write)


async def add(state: Any, cid: str, items: list[dict[str, Any]], *, fresh_on_duplicate: bool) -> list[dict[str, Any]]:
    """Append `items` (scrubbed, each given an id where it has none) and return them as stored. An id already in
    the conversation is a 400 naming it, or (`fresh_on_duplicate`, a response's items, appended after the answer)
    replaced by a new one. Nothing is appended to a conversation deleted meanwhile."""
    def write() -> list[dict[str, Any]]:
        with state.store.begin(write_first=True) as conn:
            if conn.execute(select(conv_t.c.id).where(conv_t.c.id == cid)).first() is None:
                return []
            return _insert(conn, cid, items, fresh_on_duplicate=fresh_on_duplicate)

    return await asyncio.to_thread(write)


def _insert(conn: Any, cid: str, items: list[dict[str, Any]], *, fresh_on_duplicate: bool) -> list[dict[str, Any]]:
    given = [i["id"] for i in items if i.get("id")]
    taken = set()
    if given:
        q = select(items_t.c.item_id).where(items_t.c.conversation_id == cid, items_t.c.item_id.in_(given))
        taken = {r[0] for r in conn.execute(q)}
    scrub_text = _scrubber()
    stored: list[dict[str, Any]] = []
    now = time.time()
    for k, item in enumerate(items):
        item_id = item.get("id")
        if item_id in taken or (item_id and item_id in {s["id"] for s in stored}):
            if not fresh_on_duplicate:
                raise ApiError(400, f"conversation {cid} already has an item with id {item_id!r}; leave `id` out "
                               "to have one given", param=f"items.{k}.id", code="duplicate_item")
            item_id = None
        item_id = item_id or new_id(_PREFIX.get(item.get("type", ""), "item"))
        kept = scrub({**item, "id": item_id}, scrub_text)
        stored.append(kept)
    if stored:
        conn.execute(insert(items_t), [{"conversation_id": cid, "item_id": s["id"], "item": s, "created_at": now}
                                       for s in stored])
    return stored


async def all_items(state: Any, cid: str) -> list[dict[str, Any]]:
    def read() -> list[dict[str, Any]]:
        with state.store.engine.connect() as conn:
            q = select(items_t.c.item).where(items_t.c.conversation_id == cid).order_by(items_t.c.seq)
            return [r[0] for r in conn.execute(q)]

    return await asyncio.to_thread(read)


async def find_items(state: Any, tenant: str, ids: list[Any], first: str | None = None) -> dict[str, dict[str, Any]]:
    """The items named by `ids` (those that are strings) in `tenant`'s conversations (what `item_reference`s name),
    by id: from conversation `first` when it holds one, else from the conversation that added it last. Another
    tenant's items are not found."""
    wanted = [i for i in dict.fromkeys(ids) if isinstance(i, str) and 0 < len(i) <= 100]

    def read() -> dict[str, dict[str, Any]]:
        c = items_t.c
        q = (select(c.item_id, c.item, c.conversation_id, c.seq).join(conv_t, conv_t.c.id == c.conversation_id)
             .where(conv_t.c.tenant == tenant, c.item_id.in_(wanted)))
        with state.store.engine.connect() as conn:
            rows = sorted(conn.execute(q), key=lambda r: (r.conversation_id == first, r.seq))
        return {r.item_id: dict(r.item) for r in rows}  # the preferred row comes last and wins

    return await asyncio.to_thread(read) if wanted else {}


async def page(state: Any, cid: str, order: str, limit: int, after: str | None) -> tuple[list[dict[str, Any]], bool]:
    """One page of items: `order` asc or desc by position, at most `limit`, those after item `after`."""
    def read() -> tuple[list[dict[str, Any]], bool]:
        c = items_t.c
        q = select(c.item).where(c.conversation_id == cid)
        with state.store.engine.connect() as conn:
            if after is not None:
                seq = conn.execute(select(c.seq).where(c.conversation_id == cid, c.item_id == after)).scalar()
                if seq is None:  # a 404, as OpenAI answers it
                    raise ApiError(404, f"after: no item with id {after!r} in conversation {cid}", param="after",
                                   code="item_not_found")
                q = q.where(c.seq > seq if order == "asc" else c.seq < seq)
            q = q.order_by(c.seq if order == "asc" else c.seq.desc()).limit(limit + 1)
            rows = [r[0] for r in conn.execute(q)]
        return rows[:limit], len(rows) > limit

    return await asyncio.to_thread(read)


async def item(state: Any, cid: str, item_id: str) -> dict[str, Any]:
    def read() -> Any:
        with state.store.engine.connect() as conn:
            return conn.execute(select(items_t.c.item).where(items_t.c.conversation_id == cid,
                                                             items_t.c.item_id == item_id)).scalar()

    found = await asyncio.to_thread(read)
    if found is None:
        raise ApiError(404, f"no item with id {item_id!r} in conversation {cid}", param="item_id",
                       code="item_not_found")
    return dict(found)


async def delete_item(state: Any, cid: str, item_id: str) -> None:
    await item(state, cid, item_id)

    def write() -> None:
        with state.store.begin(write_first=True) as conn:
            conn.execute(sql_delete(items_t).where(items_t.c.conversation_id == cid, items_t.c.item_id == item_id))

    await asyncio.to_thread(write)

