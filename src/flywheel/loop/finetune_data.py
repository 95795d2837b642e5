"""Reading and tokenizing fine-tuning rows for `flywheel finetune`.

Accepted, one JSON object a line: the rows `flywheel export sft` / `hf` write (`{"messages": [...],
"source_trace_id": ...}`) and OpenAI's chat fine-tuning format that `flywheel export openai-ft` writes
(`{"messages": [...]}`, optionally `tools`, and `weight: 0|1` on assistant messages). A folder from
`flywheel export hf` is read as its `train.jsonl`. Every row needs an assistant message with text; the loss is
taken on the assistant messages only (not on the ones with `weight: 0`, nor on an agent's turns that called tools:
those and the tool results are the context the template renders before the answer).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.errors import UserError
from flywheel.text.lines import numbered_lines

ROLES = ("system", "user", "assistant", "tool")
ROW_KEYS = {"messages", "source_trace_id", "tools", "parallel_tool_calls"}
IGNORE = -100  # label of a token the loss skips (torch's cross_entropy ignore_index)


@dataclass
class Row:
    messages: list[dict[str, Any]]
    line: int
    source_trace_id: str | None = None


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # IGNORE outside the assistant turns


def data_file(path: Path) -> Path:
    if path.is_dir():
        train = path / "train.jsonl"
        if not train.is_file():
            raise UserError(f"{path} is a folder without train.jsonl",
                            hint="give an SFT file (`flywheel export sft FILE.jsonl`) or an hf export folder")
        return train
    if not path.is_file():
        raise UserError(f"data file {path} does not exist",
                        hint="write one with `flywheel export sft sft.jsonl` (or `export openai-ft`)")
    return path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_rows(path: Path) -> list[Row]:
    """Every row of an SFT / openai-ft JSONL file, validated; UserError with file:line for the first bad one."""
    rows: list[Row] = []
    for n, where, line in numbered_lines(path, hint=_FORMAT_HINT):
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"not JSON ({exc.msg})", where=where, hint=_FORMAT_HINT) from None
        rows.append(_row(obj, n, where))
    if not rows:
        raise UserError(f"{path} has no rows", hint=_FORMAT_HINT)
    return rows


_FORMAT_HINT = ('each line is {"messages": [{"role": "user", "content": ...}, {"role": "assistant", "content": '
                '...}]} as `flywheel export sft` writes it')


def _row(obj: Any, n: int, where: str) -> Row:
    if isinstance(obj, dict) and "messages" not in obj and {"chosen", "rejected"} <= set(obj):
        raise UserError("a preference (DPO) row: `flywheel finetune` learns from SFT rows", where=where,
                        hint="export them with `flywheel export sft FILE.jsonl` (or openai-ft / hf)")
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list) or not obj["messages"]:
        raise UserError("the row has no `messages` list", where=where, hint=_FORMAT_HINT)
    extra = set(obj) - ROW_KEYS
    if extra:
        raise UserError(f"unknown key(s) {sorted(extra)}", where=where, hint=_FORMAT_HINT)
    messages = []
    for i, m in enumerate(obj["messages"]):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise UserError(f"message {i}: role must be one of {', '.join(ROLES)}", where=where, hint=_FORMAT_HINT)
        content = m.get("content")
        calls = m.get("tool_calls") if m["role"] == "assistant" else None
        if calls is not None and not (isinstance(calls, list) and all(isinstance(c, dict) for c in calls)):
            raise UserError(f"message {i}: tool_calls must be a list of calls", where=where, hint=_FORMAT_HINT)
        if content is None and calls:
            content = ""
        if not isinstance(content, str):
            raise UserError(f"message {i}: content must be text", where=where, hint=_FORMAT_HINT)
        weight = m.get("weight", 1)
        if weight not in (0, 1):
            raise UserError(f"message {i}: weight must be 0 or 1", where=where)
        message: dict[str, Any] = {"role": m["role"], "content": content, "weight": weight}
        if calls:  # the turn that called the tools is the context of the answer, rendered but not learnt
            message |= {"tool_calls": [_template_call(c) for c in calls], "weight": 0}
        if m["role"] == "tool" and isinstance(m.get("tool_call_id"), str):
            message["tool_call_id"] = m["tool_call_id"]
        messages.append(message)
    if not any(m["role"] == "assistant" and m["weight"] and m["content"].strip() for m in messages):
        raise UserError("no assistant message with text to learn from", where=where, hint=_FORMAT_HINT)
    trace = obj.get("source_trace_id")
    return Row(messages, n, str(trace) if trace is not None else None)


def _template_call(call: dict[str, Any]) -> dict[str, Any]:
    """A tool call as chat templates take it: `function.arguments` a mapping (most templates render it as JSON)."""
    raw = call.get("function")
    function: dict[str, Any] = raw if isinstance(raw, dict) else {}
    arguments = function.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass
    return {"type": "function", "id": call.get("id"),
            "function": {"name": function.get("name"), "arguments": arguments}}


def _plain(m: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in m.items() if k != "weight"}


def encode(row: Row, tokenizer: Any, max_length: int) -> Example | None:
    """Token ids of the row as the chat template renders it, labels on the (weighted) assistant turns only;
    None when truncation to `max_length` left no assistant token."""
    from flywheel.gateway.providers.transformers_local import chat_text

    plain = [_plain(m) for m in row.messages]
    ids: list[int] = []
    labels: list[int] = []
    done = ""  # the text rendered so far; each assistant turn is the difference between two renderings
    for i, m in enumerate(row.messages):
        if m["role"] != "assistant":
            continue
        before = chat_text(tokenizer, plain[:i], add_generation_prompt=True) if i else ""
        after = chat_text(tokenizer, plain[:i + 1], add_generation_prompt=False)
        if not before.startswith(done) or not after.startswith(before):
            # a template that rewrites earlier turns (some drop the reasoning of past turns): train on the last
            # assistant turn only, after the whole prompt
            return _last_turn(row, tokenizer, max_length)
        _extend(ids, labels, tokenizer, before[len(done):], False)
        _extend(ids, labels, tokenizer, after[len(before):], bool(m["weight"]))
        done = after
    ids, labels = ids[:max_length], labels[:max_length]
    return Example(ids, labels) if any(x != IGNORE for x in labels) else None


def _last_turn(row: Row, tokenizer: Any, max_length: int) -> Example | None:
    from flywheel.gateway.providers.transformers_local import chat_text

    plain = [_plain(m) for m in row.messages]
    last = max(i for i, m in enumerate(row.messages) if m["role"] == "assistant")
    prompt = chat_text(tokenizer, plain[:last], add_generation_prompt=True)
    ids: list[int] = []
    labels: list[int] = []
    _extend(ids, labels, tokenizer, prompt, False)
    answer = tokenizer(plain[last]["content"], add_special_tokens=False).input_ids
    if tokenizer.eos_token_id is not None:
        answer = [*answer, tokenizer.eos_token_id]
    ids += answer
    labels += answer if row.messages[last]["weight"] else [IGNORE] * len(answer)
    ids, labels = ids[:max_length], labels[:max_length]
    return Example(ids, labels) if any(x != IGNORE for x in labels) else None


def _extend(ids: list[int], labels: list[int], tokenizer: Any, text: str, learn: bool) -> None:
    if not text:
        return
    new = tokenizer(text, add_special_tokens=False).input_ids
    ids += new
    labels += new if learn else [IGNORE] * len(new)
