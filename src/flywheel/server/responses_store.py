"""Kept responses, read back from their traces: `previous_response_id` on POST /v1/responses, and
GET / DELETE /v1/responses/{id}. Nothing is stored twice: a response is its trace (`resp_<trace id>`).

The root span of a /v1/responses call records the whole conversation the model was asked (`inputs.messages`:
`instructions` first, then a previous response's conversation, then this request's `input`), the request's
settings and the response's status, usage, `flywheel` extra and reasoning text (`inputs.response`), and the answer
(`outputs`: the text, or {content, tool_calls}). Its attributes say whether it may be read back
(`flywheel.response.store`; false for `store: false`) and which response it continued
(`flywheel.response.previous_id`); DELETE adds `flywheel.response.deleted` (the trace itself stays).

So the conversation before a response is one trace away: its messages less its `instructions` (OpenAI does not
carry them over), plus its answer. An `app:NAME` turn contributes the user message and the answer as its `app`
span stored them — after the input guards — so a value a redact guard masked stays masked in every later turn
(the root span keeps what the caller sent). Traces are scrubbed before they are stored (secrets, and PII when
`tracing.redact_pii` is on), so a continued conversation carries those values as their placeholders.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update

from flywheel.server import conversations_store
from flywheel.server.errors import ApiError
from flywheel.server.responses_wire import input_items, output_items, response_object, usage_json
from flywheel.store.schema import spans as spans_t
from flywheel.tracing.redact import MAX_ITEMS, MAX_STRING
from flywheel.types import Message

ROOT = "server /v1/responses"
KEPT = "flywheel.response.store"
PREVIOUS = "flywheel.response.previous_id"
DELETED = "flywheel.response.deleted"
_ID = re.compile(r"resp_([0-9a-f]{32})")
_ITEM = re.compile(r"(msg|fc|rs)_([0-9a-f]{32})(?:_(\d+))?")  # an output item's id: the response's trace id in it
_INPUT_ITEM = re.compile(r"(msg|fc|fco)_([0-9a-f]{32})_in(\d+)")  # an input item's id (responses_wire.input_items)
_CUT = re.compile(r"…\[\d+ more characters\]$")
_WAIT_S = (0.0, 0.1, 0.2, 0.4)  # another worker's trace writer may still hold a response that just ended


def unkept_reason(state: Any) -> str | None:
    """Why this server keeps no response (its traces keep no content), or None when it does."""
    tracing = state.project.config.tracing
    if not tracing.enabled:
        return "this server records no traces (tracing.enabled: false)"
    if not tracing.capture_content:
        return "this server's traces keep no content (tracing.capture_content: false)"
    return None


@dataclass
class Stored:
    """One kept response: its root span row and its outermost `app` span row (an `app:NAME` answer), if any."""

    rid: str
    root: dict[str, Any]
    app: dict[str, Any] | None

    @property
    def record(self) -> dict[str, Any]:
        return (self.root["inputs"] or {}).get("response") or {}

    @property
    def failed(self) -> bool:
        return bool(self.root["error"]) or self.record.get("status") in (None, "failed")

    def output(self) -> list[dict[str, Any]]:
        """The response's output items, as it answered them."""
        text, tool_calls = _answer(self.root["outputs"])
        cut = not self.failed and self.record.get("status") == "incomplete"
        thought = self.record.get("reasoning")  # the reasoning item's text (None: it did not think)
        return output_items(self.rid, text, tool_calls, cut, self.record.get("annotations"),
                            thought if isinstance(thought, str) else None)

    def payload(self) -> dict[str, Any]:
        """The response object as it was answered (GET /v1/responses/{id})."""
        record = self.record
        status = "failed" if self.failed else record["status"]
        usage = record.get("usage")
        return response_object(
            self.rid, record.get("settings") or {}, status=status, output=self.output(),
            usage=usage_json(*usage) if usage else None, created_at=self.root["start_ns"] // 1_000_000_000,
            extra=record.get("flywheel"),
            error={"code": "server_error", "message": self.root["error"] or "failed"} if self.failed else None,
            completed_at=record.get("completed_at") or (self.root["end_ns"] // 1_000_000_000 if self.root.get("end_ns")
                                                        else None))

    def input_items(self) -> list[dict[str, Any]]:
        """The request's `input` as Responses input items (GET /v1/responses/{id}/input_items)."""
        record = self.record
        messages = list((self.root["inputs"] or {}).get("messages") or [])
        start = record.get("input_start")
        if not isinstance(start, int):  # kept before input_start was recorded: without its instructions
            start = 1 if (record.get("settings") or {}).get("instructions") and messages else 0
            if (record.get("settings") or {}).get("previous_response_id"):
                raise ApiError(404, f"the input items of response {self.rid} were not recorded",
                               param="response_id", code="response_not_found")
        return input_items(self.rid[5:], messages[start:], record.get("developer"))

    def history(self, param: str) -> list[Message]:
        """The conversation up to and including this response's answer, less its `instructions`."""
        if self.failed:
            raise ApiError(400, f"response {self.rid} failed and has no answer to continue from; continue from "
                           "the response before it, or send the conversation in `input`", param=param,
                           code="invalid_value")
        messages = list((self.root["inputs"] or {}).get("messages") or [])
        if (self.record.get("settings") or {}).get("instructions") and messages:
            messages = messages[1:]
        text, tool_calls = _answer(self.root["outputs"])
        if self.app is not None:  # what the app's guards let through, not what the caller sent
            asked = next(iter((self.app["inputs"] or {}).values()), None)
            last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)
            if isinstance(asked, str) and last is not None:
                messages[last] = {**messages[last], "content": asked}
            stored = (self.app["outputs"] or {}).get("text") if isinstance(self.app["outputs"], dict) else None
            text = stored if isinstance(stored, str) else text
        answer: dict[str, Any] = {"role": "assistant", "content": text}
        if tool_calls:
            answer["tool_calls"] = tool_calls
        messages.append(answer)
        if len(messages) > MAX_ITEMS or _cut(messages):
            raise ApiError(400, f"response {self.rid} is too long to continue from its trace (traces keep "
                           f"{MAX_STRING} characters a text and {MAX_ITEMS} messages); send the conversation in "
                           "`input`", param=param, code="invalid_value")
        try:
            return [Message(role=m["role"], content=m.get("content") or "", tool_calls=m.get("tool_calls"),
                            tool_call_id=m.get("tool_call_id")) for m in messages]
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, f"response {self.rid} cannot be continued: its trace does not hold its messages; "
                           "send the conversation in `input`", param=param, code="invalid_value") from None


def _answer(outputs: Any) -> tuple[str, list[dict[str, Any]] | None]:
    if isinstance(outputs, dict):
        return str(outputs.get("content") or ""), outputs.get("tool_calls") or None
    return (outputs if isinstance(outputs, str) else ""), None


def _cut(value: Any) -> bool:
    """Did the trace cut this value (a text over MAX_STRING characters, a list over MAX_ITEMS items)?"""
    if isinstance(value, str):
        return len(value) > MAX_STRING and _CUT.search(value) is not None
    if isinstance(value, dict):
        return any(_cut(v) for v in value.values())
    if isinstance(value, list):
        return len(value) > MAX_ITEMS or any(_cut(v) for v in value)
    return False


async def find(state: Any, rid: str, tenant: str, param: str) -> Stored:
    """The kept response `rid` of `tenant`; another tenant's is exactly as absent as a missing one (404)."""
    reason = unkept_reason(state)
    match = _ID.fullmatch(rid)
    rows: list[dict[str, Any]] = []
    if reason is None and match is not None:
        for i, wait in enumerate(_WAIT_S):
            if i == 1:  # not written yet? this worker's writer may still hold it
                await asyncio.to_thread(state.store.writer.flush, 5.0)
            await asyncio.sleep(wait)
            rows = await asyncio.to_thread(_rows, state, match.group(1))
            if any(r["parent_id"] is None and r["tenant"] == tenant for r in rows):
                break  # (another tenant's takes as long to be not found as a missing one)
    root = next((r for r in rows if r["parent_id"] is None), None)
    if root is None or root["name"] != ROOT or root["tenant"] != tenant:
        raise ApiError(404, f"no response with id {rid!r} was found" + (f": {reason}" if reason else ""),
                       param=param, code="response_not_found")
    attrs = root["attributes"] or {}
    if root["inputs"] is None:
        raise ApiError(404, f"response {rid!r} cannot be read back: its trace kept no content", param=param,
                       code="response_not_found")
    if attrs.get(KEPT) is False:
        raise ApiError(404, f"response {rid!r} was stored with store: false, so it cannot be read back or "
                       "continued; send the conversation in `input`", param=param, code="response_not_found")
    if attrs.get(DELETED):
        raise ApiError(404, f"response {rid!r} was deleted", param=param, code="response_not_found")
    apps = sorted((r for r in rows if r["kind"] == "app"), key=lambda r: r["start_ns"])
    return Stored(rid, root, apps[0] if apps else None)


async def resolve_references(state: Any, items: Any, tenant: str, conversation: str | None = None) -> Any:
    """`input` with each `{type: item_reference, id}` replaced by the item it names, of the caller's tenant only:
    an item of one of its conversations (of `conversation` first: the items a response with `store: false` added
    to a conversation are found there too), else an output or input item of a kept response, read back from the
    trace whose id is in the item's id. The Vercel AI SDK sends references for the assistant turns it got from
    this server while `store` is on; the Agents SDK keeps them in a conversation session."""
    if not isinstance(items, list) or not any(isinstance(i, dict) and i.get("type") == "item_reference"
                                              for i in items):
        return items
    refs = [i.get("id") for i in items if isinstance(i, dict) and i.get("type") == "item_reference"]
    in_conversations = await conversations_store.find_items(state, tenant, refs, conversation)
    responses: dict[str, Stored] = {}
    out: list[Any] = []
    for k, item in enumerate(items):
        if not isinstance(item, dict) or item.get("type") != "item_reference":
            out.append(item)
        elif isinstance(item.get("id"), str) and item["id"] in in_conversations:
            out.append(in_conversations[item["id"]])
        else:
            out.append(await _kept_item(state, item.get("id"), tenant, f"input.{k}.id", responses))
    return out


async def _kept_item(state: Any, ref: Any, tenant: str, param: str, responses: dict[str, Stored]) -> dict[str, Any]:
    """The item `ref` of a kept response: an output item (msg_<trace>, msg_<trace>_N streamed after a tool call,
    fc_<trace>_N the Nth tool call, rs_<trace> its reasoning: dropped from the input, as a reasoning item sent back
    is) or an input item (msg_ / fc_ / fco_<trace>_inN, as its input_items list it)."""
    output = _ITEM.fullmatch(ref) if isinstance(ref, str) else None
    given = _INPUT_ITEM.fullmatch(ref) if isinstance(ref, str) and output is None else None
    match = output or given
    if match is None:
        raise ApiError(404, f"no item with id {ref!r} was found: an item_reference names an item of one of your "
                       "conversations, or an output or input item of a response this server kept", param=param,
                       code="item_not_found")
    kind, trace, number = match.groups()
    stored = responses.get(trace) or await find(state, f"resp_{trace}", tenant, param)
    responses[trace] = stored
    if given is not None:
        found = [i for i in stored.input_items() if i["id"] == ref]
    elif stored.failed:
        raise ApiError(400, f"response {stored.rid} failed, so its item {ref!r} has no content; send the "
                       "item itself in `input`", param=param, code="invalid_value")
    else:
        wanted = {"msg": "message", "fc": "function_call", "rs": "reasoning"}[kind]
        calls = [o for o in stored.output() if o["type"] == wanted]
        index = int(number or 0) if kind == "fc" else 0
        found = calls[index:index + 1]
    if not found:
        raise ApiError(404, f"response {stored.rid} has no item {ref!r}", param=param, code="item_not_found")
    return found[0]


def _rows(state: Any, trace_id: str) -> list[dict[str, Any]]:
    s = spans_t.c
    q = select(spans_t).where(s.trace_id == trace_id, or_(s.parent_id.is_(None), s.kind == "app"))
    with state.store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


async def delete(state: Any, stored: Stored) -> None:
    """Mark the response as deleted (no longer retrievable or continuable); its trace stays."""
    attrs = {**(stored.root["attributes"] or {}), DELETED: True}

    def write() -> None:
        with state.store.engine.begin() as conn:
            conn.execute(update(spans_t).where(spans_t.c.span_id == stored.root["span_id"]).values(attributes=attrs))

    await asyncio.to_thread(write)
