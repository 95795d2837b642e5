"""Cache keys and per-request cache directives.

A key is the sha256 of everything that changes the answer and nothing else: the normalised messages, the
request parameters that change output (temperature, top_p, top_k, seed, the penalties, max_tokens, stop,
response_format, tools, tool_choice;
assistant tool calls and tool results are part of the messages), the resolved
(pinned) model version, the route to it (`route_version`: provider, base_url, alias params, prompt family and
the fallback chain), the prompt version, the corpus version, the tenant and the app's guard configuration. A
new prompt, model, endpoint, corpus or guard policy therefore gets new keys and old entries simply stop
matching; there is nothing to invalidate by hand. Timeouts, API keys and metadata (trace ids, cache
directives, user tags, the request's `user`) are noise and stay out of the key, and so is the per-run nonce of
input-redaction placeholders (`<EMAIL_ADDRESS_1_qhzvk>` is keyed as `<EMAIL_ADDRESS_1>`): two users asking the same question with
their own e-mail addresses share one entry (the cache replays it with the current run's nonce, see __init__.py).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flywheel.checks.pii import without_nonces
from flywheel.config import ModelAlias
from flywheel.errors import UserError
from flywheel.types import ChatRequest, Message

KEY_VERSION = "3"  # bump when the canonical form below changes, so old rows are never misread
_OUTPUT_PARAMS = ("temperature", "max_tokens", "stop", "response_format", "tools", "tool_choice",
                  "parallel_tool_calls", "logprobs", "top_logprobs", "top_p", "top_k", "seed", "frequency_penalty",
                  "presence_penalty")  # (a None parameter stays out of the key; `user` is never in it)
DIRECTIVES = ("no-cache", "no-store")


@dataclass(frozen=True)
class Versions:
    """What a cached answer depends on besides the request itself."""

    model_version: str
    prompt_version: str | None = None
    corpus_version: str | None = None
    tenant: str = "default"
    route: str | None = None  # `route_version(...)`: provider, base_url, alias params, fallbacks
    guards: str | None = None  # the app's guard policy version (a different policy may answer differently)

    def as_dict(self) -> dict[str, str | None]:
        return {"model": self.model_version, "prompt": self.prompt_version, "corpus": self.corpus_version,
                "tenant": self.tenant, "route": self.route, "guards": self.guards}


def route_version(chain: Iterable[ModelAlias]) -> str:
    """A digest of how a request reaches its model: for the alias and each fallback in order, the provider,
    base_url, model, pinned version, alias `params` (temperature …), prompt family and structured-output mode.
    API keys and their variable names are not part of it: they do not change the answer."""
    route = [{"provider": a.provider, "base_url": (a.base_url or "").rstrip("/"), "model": a.model,
              "version": a.version, "params": a.params, "family": a.family, "json_schema": a.json_schema}
             for a in chain]
    return _digest({"v": KEY_VERSION, "route": route})[:16]


# Width forms: the full-width twins of ASCII (ＧＰＴ４, ２０２４, ？, the ideographic space U+3000) that Chinese and
# Japanese input methods type, and half-width katakana: NFKC's <wide> and <narrow> mappings and no others
# (NFKC's other mappings change meaning: x² → x2, ½ → 1⁄2, ① → 1). All lie in U+3000 and U+FF01–U+FFEE.
_WIDTH = {c: unicodedata.normalize("NFKC", chr(c)) for c in (0x3000, *range(0xFF01, 0xFFEF))
          if unicodedata.decomposition(chr(c)).startswith(("<wide>", "<narrow>"))}
WIDTH_FORM = re.compile("[{}]".format("".join(map(chr, _WIDTH))))


# Words that make the characters' form the subject ("把 ＡＢＣ 转成半角", "the code point of Ａ"): then the
# width forms are the question itself and stay as written.
_ABOUT_FORMS = re.compile(r"全角|半角|全形|半形|全宽|半宽|码位|码点|full[- ]?width|half[- ]?width|zenkaku|hankaku"
                          r"|unicode|code ?points?", re.IGNORECASE)


def fold_width(text: str) -> str:
    """`text` with full-width ASCII forms as ASCII and half-width katakana as katakana (NFC), nothing else
    changed: "ＧＰＴ４ 的上下文长度？" → "GPT4 的上下文长度?"; as written (NFC) when it asks about the forms
    themselves (全角, 半角, full-width, Unicode, code point …)."""
    if not WIDTH_FORM.search(text) or _ABOUT_FORMS.search(text.translate(_WIDTH)):
        return unicodedata.normalize("NFC", text)
    return unicodedata.normalize("NFC", text.translate(_WIDTH))


def normalise_text(text: str) -> str:
    """Width forms folded (fold_width), NFC, LF line endings, no leading/trailing whitespace, placeholders
    without their run's nonce: differences a model does not see as meaning.

    (The width fold came after KEY_VERSION 3 without a bump: a text without width forms keeps its key, and a
    key of text with them, stored before, can no longer be computed (no folded text has width forms), so such
    an entry is only missed, never served for another question; it expires with its TTL.)"""
    text = fold_width(text).replace("\r\n", "\n").replace("\r", "\n").strip()
    return without_nonces(text) if "<" in text else text


def _params(request: ChatRequest) -> dict[str, Any]:
    params = {p: value for p in _OUTPUT_PARAMS if (value := request.sampling(p)) is not None}
    if request.n != 1:  # only then, so keys of one-choice requests stay as they were
        params["n"] = request.n
    return params


def _digest(payload: dict[str, Any]) -> str:
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def normalised_request(request: ChatRequest) -> dict[str, Any]:
    """The canonical form of a request that the exact key hashes."""
    return {
        "messages": [_message(m) for m in request.messages],
        "params": _params(request),
    }


def _message(m: Message) -> list[Any]:
    out: list[Any] = [m.role, normalise_text(m.content), m.name]
    if m.tool_calls or m.tool_call_id is not None:  # only then, so keys of plain messages stay as they were
        out += [m.tool_calls, m.tool_call_id]
    return out


def exact_key(request: ChatRequest, versions: Versions) -> str:
    """sha256 hex of the normalised request + model/prompt/corpus versions + tenant."""
    item = item_ref(request)
    if item is not None:
        return item_key(*item, versions=versions)
    return _digest({"v": KEY_VERSION, "kind": "exact", "request": normalised_request(request), **versions.as_dict()})


def item_key(task: str, item_id: str, item_version: str | int | None, *, versions: Versions) -> str:
    """Key for "do TASK on item X": the item's id and version stand in for its (possibly long) text, so the
    answer is reused until the item itself changes."""
    return _digest({"v": KEY_VERSION, "kind": "item", "task": task, "item": str(item_id),
                    "item_version": None if item_version is None else str(item_version), **versions.as_dict()})


def item_ref(request: ChatRequest) -> tuple[str, str, str | None] | None:
    """(task, item id, item version) from `metadata["cache_item"]`, when the caller marked the request as an
    item task, e.g. {"task": "summarise", "id": "doc-42", "version": "3"}."""
    ref = request.metadata.get("cache_item")
    if ref is None:
        return None
    if not isinstance(ref, dict) or not ref.get("task") or ref.get("id") in (None, ""):
        raise UserError(f"metadata.cache_item must be a mapping with `task` and `id` (and `version`), got {ref!r}",
                        hint='e.g. metadata={"cache_item": {"task": "summarise", "id": "doc-42", "version": 3}}')
    version = ref.get("version")
    return str(ref["task"]), str(ref["id"]), None if version is None else str(version)


def semantic_scope(request: ChatRequest, versions: Versions, *, multi_turn: bool = False) -> str:
    """The partition a semantic match may come from: same system prompt, model, prompt/corpus version, tenant
    and output parameters. With multi_turn, the earlier turns are part of the scope too, so only the last
    user message is compared by meaning and the conversation before it must match exactly."""
    system = [normalise_text(m.content) for m in request.messages if m.role == "system"]
    history: list[list[str]] = []
    if multi_turn:
        last_user = max((i for i, m in enumerate(request.messages) if m.role == "user"), default=-1)
        history = [[m.role, normalise_text(m.content)] for i, m in enumerate(request.messages)
                   if m.role != "system" and i != last_user]
    return _digest({"v": KEY_VERSION, "kind": "scope", "system": system, "history": history,
                    "params": _params(request), **versions.as_dict()})[:32]


def is_single_turn(request: ChatRequest) -> bool:
    """Exactly one user message and no assistant/tool turns (system messages allowed)."""
    roles = [m.role for m in request.messages if m.role != "system"]
    return roles == ["user"]


@dataclass(frozen=True)
class Directives:
    read: bool = True  # False: "no-cache", do not answer from the cache (the fresh answer may still be stored)
    write: bool = True  # False: "no-store", do not store this request's answer


def directives(request: ChatRequest) -> Directives:
    """Parse `metadata["cache"]`: "no-cache", "no-store", "no-cache, no-store" or a list of those. A request for
    several choices (`n` > 1) neither reads nor writes: an entry holds one answer."""
    raw = request.metadata.get("cache")
    if request.n != 1:
        return Directives(read=False, write=False)
    if raw is None:
        return Directives()
    items: list[Any]
    if isinstance(raw, str):
        items = [p for p in raw.replace(";", ",").split(",")]
    elif isinstance(raw, (list, tuple)):
        items = list(raw)
    else:
        items = [raw]
    found = set()
    for item in items:
        name = str(item).strip().lower().replace("_", "-")
        if not name:
            continue
        if name not in DIRECTIVES:
            raise UserError(f"unknown cache directive {item!r} in metadata.cache",
                            hint=f"use one or more of {', '.join(DIRECTIVES)}")
        found.add(name)
    return Directives(read="no-cache" not in found, write="no-store" not in found)
