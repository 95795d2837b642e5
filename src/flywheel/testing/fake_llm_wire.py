"""Wire formats spoken by the fake LLM server: OpenAI chat/embeddings/models and Anthropic Messages.

Pure functions from request bodies (dicts) and reply texts to response payloads; no I/O here.

Token counting (deterministic, documented because tests assert on it): every CJK / kana / hangul
character is one token, every run of other word characters is one token, every other non-space
character (punctuation, symbols) is one token. ``prompt_tokens`` is the sum over the text of every
message (and the Anthropic ``system`` field); ``completion_tokens`` is the count of the reply text
(summed over the choices when several are asked for with ``n``).

Log-probabilities (OpenAI ``logprobs: true``, ``top_logprobs: K``): the answer is cut into tokens (each word,
CJK character or punctuation mark with the whitespace before it), which concatenate back to the text exactly;
a stream sends one token per chunk, its logprobs on the chunk. Unless scripted, each token's logprob is derived
from its text (between -0.1 and -0.001, the same every time) and its K alternatives are the token itself followed
by filler tokens (" the", ",", …) with logprobs from -3 down. A reply can script them: ``Scored("B", {"A": -0.2,
"B": -1.6})`` gives the first token those alternatives (a dict per token, in order; the token's own logprob is
its entry, else derived).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Self

import numpy as np

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af"
TOKEN = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+|[^\\w\\s]")
_WORD = re.compile(f"[{_CJK}]|[^\\W{_CJK}]+")
_ids = itertools.count(1)

DEFAULT_DIMENSIONS = 384


def count_tokens(text: str) -> int:
    """The fake tokenizer: see the module docstring."""
    return len(TOKEN.findall(text))


def content_text(content: Any) -> str:
    """Text of a message `content`: a string, or a list of parts/blocks whose text parts are joined."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, dict) and "content" in part:  # anthropic tool_result block
                parts.append(content_text(part["content"]))
        return "\n".join(parts)
    return str(content)


def last_user_text(body: dict) -> str:
    """Text of the last message from the caller's side: a user message, or an OpenAI `tool` message (on the
    Anthropic wire a tool result is a user message whose tool_result blocks give the text), so rules can answer
    a tool's result the same way on both wires."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") in ("user", "tool"):
            return content_text(message.get("content"))
    return ""


@dataclass(frozen=True)
class ToolCall:
    """A scripted answer that asks the caller to run a tool (finish_reason "tool_calls" / stop_reason
    "tool_use"). `id` defaults to a deterministic `call_<n>` per answer."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


class Scored(str):
    """A reply text with scripted log-probabilities: one {token: logprob} dict per token of the answer, from the
    first (see the module docstring)."""

    alternatives: tuple[dict[str, float], ...]

    def __new__(cls, text: str, *alternatives: dict[str, float]) -> Self:
        scored = super().__new__(cls, text)
        scored.alternatives = tuple({str(k): float(v) for k, v in a.items()} for a in alternatives)
        return scored


class Cached(str):
    """A reply text whose OpenAI-wire usage reports `tokens` of the prompt as served from the prompt cache
    (`usage.prompt_tokens_details.cached_tokens`, at most the prompt's tokens), as OpenAI does for a repeated
    prefix: `fake.add("hello", Cached("Hi!", 12))`."""

    tokens: int

    def __new__(cls, text: str, tokens: int) -> Self:
        cached = super().__new__(cls, text)
        cached.tokens = int(tokens)
        return cached


class Reasoned(str):
    """A reply text whose OpenAI-wire usage reports `tokens` reasoning tokens (`usage.completion_tokens_details
    .reasoning_tokens`) on top of the text's own tokens, as a reasoning model (o-series, gpt-5, DeepSeek-R1) that
    thought before answering does: `completion_tokens` counts both. `fake.add("why", Reasoned("Because.", 40))`.
    Each choice of an `n` > 1 request thinks its own `tokens`. With `thought`, the OpenAI wire also returns that
    text as DeepSeek / vLLM do: `message.reasoning_content` (streamed first, as `delta.reasoning_content` pieces);
    `field="reasoning"` names it as OpenRouter / newer vLLM do."""

    tokens: int
    thought: str | None
    field: str

    def __new__(cls, text: str, tokens: int, thought: str | None = None, field: str = "reasoning_content") -> Self:
        reasoned = super().__new__(cls, text)
        reasoned.tokens, reasoned.thought, reasoned.field = int(tokens), thought, field
        return reasoned


def _thought(answer: Any) -> dict[str, str]:
    """The message (or first delta) field carrying a `Reasoned` answer's thought, if it has one."""
    return {answer.field: answer.thought} if isinstance(answer, Reasoned) and answer.thought else {}


def _usage(body: dict, answers: Any, completion: int) -> dict:
    """OpenAI's usage object for an answer (its choices: `answers`): cached prompt tokens only when the first is
    `Cached`, reasoning tokens (added to `completion`) for each choice that is `Reasoned`."""
    prompt = prompt_tokens(body)
    reasoning = sum(a.tokens for a in answers if isinstance(a, Reasoned))
    completion += reasoning
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if isinstance(answers[0], Cached):
        usage["prompt_tokens_details"] = {"cached_tokens": min(answers[0].tokens, prompt)}
    if reasoning:
        usage["completion_tokens_details"] = {"reasoning_tokens": reasoning}
    return usage


# what a rule answers: text, or tool calls; or, for a request with `n` > 1, one text per choice (a tuple)
Answer = str | list[ToolCall] | tuple[str, ...]


def _calls(answer: Answer, body: dict) -> list[dict]:
    """OpenAI-wire tool calls of an answer ([] for text); only the first when the request asks for one call at a
    time (OpenAI `parallel_tool_calls: false`, Anthropic `tool_choice.disable_parallel_tool_use`), as the APIs do."""
    if isinstance(answer, str | tuple):
        return []
    choice = body.get("tool_choice")
    if body.get("parallel_tool_calls") is False or (isinstance(choice, dict) and choice.get("disable_parallel_tool_use")):
        answer = answer[:1]
    return [{"id": c.id or f"call_{i}", "type": "function",
             "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
            for i, c in enumerate(answer)]


def prompt_tokens(body: dict) -> int:
    total = count_tokens(content_text(body.get("system")))
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            total += count_tokens(content_text(message.get("content")))
    return total


def truncate(text: str, max_tokens: Any) -> tuple[str, bool]:
    """Cut `text` after `max_tokens` tokens; returns (text, was_cut)."""
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool):
        return text, False
    if max_tokens <= 0:
        return "", bool(text.strip())
    for i, match in enumerate(TOKEN.finditer(text)):
        if i == max_tokens:
            return text[:match.start()].rstrip(), True
    return text, False


def stop_at(text: str, stops: Any) -> tuple[str, str | None]:
    """Cut `text` before the first of the stop sequences (OpenAI's `stop`: a string or a list; Anthropic's
    `stop_sequences`) it contains, as both APIs do (the sequence itself is not returned); (text, the sequence
    that stopped it, or None)."""
    stops = [stops] if isinstance(stops, str) else stops if isinstance(stops, list) else []
    found = [(text.find(s), s) for s in stops if isinstance(s, str) and s and s in text]
    if not found:
        return text, None
    at, hit = min(found)
    return text[:at], hit


def _generated(text: str, body: dict, stops: Any) -> tuple[str, bool]:
    """`text` as a model told `body`'s max tokens and `stops` would end it: (text, cut by the token limit)."""
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    return truncate(stop_at(text, stops)[0], limit)


def split_deltas(text: str) -> list[str]:
    """Split into stream deltas at token boundaries; the pieces concatenate back to `text` exactly."""
    cuts = [m.start() for m in TOKEN.finditer(text)][1:]
    if not cuts:
        return [text] if text else []
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def logprob_tokens(text: str) -> list[str]:
    """The answer's tokens for log-probabilities: each token with the whitespace before it (trailing whitespace
    joins the last one); they concatenate back to `text` exactly."""
    ends = [m.end() for m in TOKEN.finditer(text)]
    if not ends:
        return [text] if text else []
    ends[-1] = len(text)
    return [text[a:b] for a, b in itertools.pairwise([0, *ends])]


_FILLERS = (" the", ",", ".", " a", " and", " of", " to", " in", " is", " it", " that", " for", " on", " with",
            " as", " was", " he", " be", " at", " by", " or")


def _derived(token: str) -> float:
    return -round(0.001 + int.from_bytes(hashlib.sha256(token.encode()).digest()[:4], "big") % 1000 / 10100, 4)


def _token(token: str, logprob: float) -> dict:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def token_logprobs(text: str, top: int, alternatives: tuple[dict[str, float], ...] = ()) -> list[dict]:
    """OpenAI `logprobs.content` for `text`: every token with its logprob and its `top` alternatives."""
    out = []
    for i, token in enumerate(logprob_tokens(text)):
        scripted = alternatives[i] if i < len(alternatives) else None
        own = scripted[token] if scripted and token in scripted else _derived(token)
        if scripted:
            ranked = sorted({**scripted, token: own}.items(), key=lambda kv: -kv[1])
        else:
            ranked = [(token, own), *((f, -3.0 - k) for k, f in enumerate(x for x in _FILLERS if x != token))]
        out.append({**_token(token, own), "top_logprobs": [_token(t, lp) for t, lp in ranked[:top]]})
    return out


def _logprobs_asked(body: dict) -> int | None:
    """The `top_logprobs` count when the request asks for log-probabilities, else None."""
    if not body.get("logprobs"):
        return None
    top = body.get("top_logprobs")
    return top if isinstance(top, int) and not isinstance(top, bool) and top > 0 else 0


def _choice_logprobs(body: dict, answer: str, said: str) -> dict | None:
    """A choice's `logprobs` field: None unless asked for; `said` is the answer as sent (maybe truncated)."""
    top = _logprobs_asked(body)
    if top is None:
        return None
    return {"content": token_logprobs(said, top, getattr(answer, "alternatives", ())), "refusal": None}


def new_id(prefix: str) -> str:
    return f"{prefix}{next(_ids):012x}"


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(obj: Any) -> bytes:
    return _ENCODER.encode(obj).encode()


# --------------------------------------------------------------------------- OpenAI chat

def openai_chat(body: dict, text: Answer) -> dict:
    model = body.get("model") or "fake-model"
    calls = _calls(text, body)
    if calls:
        prompt, completion = prompt_tokens(body), sum(count_tokens(c["function"]["arguments"]) for c in calls)
        return {"id": new_id("chatcmpl-fake"), "object": "chat.completion", "created": int(time.time()),
                "model": model, "system_fingerprint": "fp_fake",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": None, "refusal": None,
                                                     "tool_calls": calls},
                             "logprobs": None, "finish_reason": "tool_calls"}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                          "total_tokens": prompt + completion}}
    if not isinstance(text, tuple):
        assert isinstance(text, str)
        text = (text,) * choice_count(body)
    texts = [_generated(t, body, body.get("stop")) for t in text]
    completion = sum(count_tokens(t) for t, _ in texts)
    scores = [_choice_logprobs(body, answer, said) for answer, (said, _) in zip(text, texts)]
    return {
        "id": new_id("chatcmpl-fake"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [
            {"index": i, "message": {"role": "assistant", "content": t, "refusal": None, **_thought(text[i])},
             "logprobs": scores[i], "finish_reason": "length" if cut else "stop"}
            for i, (t, cut) in enumerate(texts)
        ],
        "usage": _usage(body, text, completion),
    }


def openai_chat_stream(body: dict, text: Answer) -> list[bytes]:
    """SSE events (each a complete `data: …\\n\\n` frame) for a streamed chat completion, [DONE] included. Tool
    calls stream as OpenAI does: the id and name first, then the arguments in pieces, by `index`."""
    model = body.get("model") or "fake-model"
    calls = _calls(text, body)
    answers = text if isinstance(text, tuple) else [text if isinstance(text, str) else ""] * (
        1 if calls else choice_count(body))
    texts = [_generated(t, body, body.get("stop")) for t in answers]
    options = body.get("stream_options")
    with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    base = {"id": new_id("chatcmpl-fake"), "object": "chat.completion.chunk", "created": int(time.time()),
            "model": model, "system_fingerprint": "fp_fake"}

    def chunk(index: int, delta: dict, finish: str | None = None, logprobs: dict | None = None) -> bytes:
        data = {**base, "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]}
        if with_usage:
            data["usage"] = None
        return b"data: " + dumps(data) + b"\n\n"

    frames = []
    for i, (said, cut) in enumerate(texts):
        frames.append(chunk(i, {"role": "assistant", "content": None if calls else "", "refusal": None}))
        for field_, thought in _thought(answers[i]).items():
            frames.extend(chunk(i, {field_: piece}) for piece in split_deltas(thought))
        scored = None if calls else _choice_logprobs(body, answers[i], said)
        if scored is not None:  # one token per chunk, its logprobs on it
            frames.extend(chunk(i, {"content": t["token"]}, None, {"content": [t], "refusal": None})
                          for t in scored["content"])
        else:
            frames.extend(chunk(i, {"content": piece}) for piece in split_deltas(said))
        for k, call in enumerate(calls):
            frames.append(chunk(i, {"tool_calls": [{"index": k, "id": call["id"], "type": "function",
                                                    "function": {"name": call["function"]["name"],
                                                                 "arguments": ""}}]}))
            frames.extend(chunk(i, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
                          for piece in split_deltas(call["function"]["arguments"]))
        frames.append(chunk(i, {}, "tool_calls" if calls else "length" if cut else "stop"))
    if with_usage:
        completion = sum(count_tokens(c["function"]["arguments"]) for c in calls) if calls \
            else sum(count_tokens(t) for t, _ in texts)
        usage = _usage(body, answers, completion)
        frames.append(b"data: " + dumps({**base, "choices": [], "usage": usage}) + b"\n\n")
    frames.append(b"data: [DONE]\n\n")
    return frames


def choice_count(body: dict) -> int:
    """The `n` of an OpenAI request: how many choices to answer (1 when absent or not a whole number 1..128)."""
    n = body.get("n")
    return n if isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= 128 else 1


def openai_error(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def models_list(names: list[str]) -> dict:
    created = int(time.time())
    return {"object": "list",
            "data": [{"id": m, "object": "model", "created": created, "owned_by": "flywheel-fake"} for m in names]}


# --------------------------------------------------------------------------- Anthropic messages

def anthropic_message(body: dict, text: Answer) -> dict:
    if isinstance(text, tuple):  # the Messages API has no `n`: one answer
        text = text[0]
    calls = _calls(text, body)
    if calls:
        blocks = [{"type": "tool_use", "id": c["id"].replace("call_", "toolu_", 1), "name": c["function"]["name"],
                   "input": json.loads(c["function"]["arguments"])} for c in calls]
        return {"id": new_id("msg_fake"), "type": "message", "role": "assistant",
                "model": body.get("model") or "fake-model", "content": blocks, "stop_reason": "tool_use",
                "stop_sequence": None,
                "usage": {"input_tokens": prompt_tokens(body),
                          "output_tokens": sum(count_tokens(c["function"]["arguments"]) for c in calls)}}
    assert isinstance(text, str)
    stopped, hit = stop_at(text, body.get("stop_sequences"))
    text, cut = truncate(stopped, body.get("max_tokens"))
    return {
        "id": new_id("msg_fake"),
        "type": "message",
        "role": "assistant",
        "model": body.get("model") or "fake-model",
        "content": [{"type": "text", "text": text}],
        "stop_reason": "max_tokens" if cut else "stop_sequence" if hit else "end_turn",
        "stop_sequence": None if cut else hit,
        "usage": {"input_tokens": prompt_tokens(body), "output_tokens": count_tokens(text)},
    }


def anthropic_stream(body: dict, text: Answer) -> list[bytes]:
    """SSE frames of a streamed Anthropic message: message_start … message_stop (tool_use blocks stream their
    input as `input_json_delta` pieces)."""
    message = anthropic_message(body, text)
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None,
             "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 0}}
    frames = [_event("message_start", {"type": "message_start", "message": start}), _event("ping", {"type": "ping"})]
    for i, block in enumerate(message["content"]):
        opened: dict[str, Any]
        if block["type"] == "text":
            opened, pieces = {"type": "text", "text": ""}, [{"type": "text_delta", "text": piece}
                                                            for piece in split_deltas(block["text"])]
        else:
            opened = {**block, "input": {}}
            pieces = [{"type": "input_json_delta", "partial_json": piece}
                      for piece in split_deltas(json.dumps(block["input"], ensure_ascii=False))]
        frames.append(_event("content_block_start", {"type": "content_block_start", "index": i,
                                                     "content_block": opened}))
        frames.extend(_event("content_block_delta", {"type": "content_block_delta", "index": i, "delta": piece})
                      for piece in pieces)
        frames.append(_event("content_block_stop", {"type": "content_block_stop", "index": i}))
    frames += [
        _event("message_delta", {"type": "message_delta",
                                 "delta": {"stop_reason": message["stop_reason"],
                                           "stop_sequence": message["stop_sequence"]},
                                 "usage": {"output_tokens": usage["output_tokens"]}}),
        _event("message_stop", {"type": "message_stop"}),
    ]
    return frames


def _event(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + dumps(data) + b"\n\n"


def anthropic_error(message: str, type_: str) -> dict:
    return {"type": "error", "error": {"type": type_, "message": message}}


# --------------------------------------------------------------------------- embeddings

def embedding(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> np.ndarray:
    """Deterministic unit vector (float64): the normalised sum of one pseudo-random vector per distinct
    lower-cased word, weighted by the square root of its count.

    Texts that share words point in similar directions; unrelated texts are near-orthogonal.
    """
    counts = Counter(_WORD.findall(text.lower()) or [""])
    acc = np.zeros(dimensions)
    for word, count in counts.items():
        acc += math.sqrt(count) * _word_vector(word, dimensions)
    return acc / (np.linalg.norm(acc) or 1.0)


@lru_cache(maxsize=65536)
def _word_vector(word: str, dimensions: int) -> np.ndarray:
    raw = hashlib.shake_256(word.encode()).digest(2 * dimensions)
    vector = np.frombuffer(raw, dtype="<i2") / 32768.0
    vector.flags.writeable = False  # cached and shared
    return vector


def embeddings_response(body: dict) -> dict:
    """Raises ValueError with a user-facing message on a bad `input` or `dimensions`."""
    raw = body.get("input")
    if isinstance(raw, str):
        texts = [raw]
    elif isinstance(raw, list) and raw and all(isinstance(x, int) for x in raw):
        texts = [" ".join(f"t{x}" for x in raw)]
    elif isinstance(raw, list) and raw and all(isinstance(x, (str, list)) for x in raw):
        texts = [x if isinstance(x, str) else " ".join(f"t{t}" for t in x) for x in raw]
    else:
        raise ValueError("'input' must be a non-empty string or a non-empty list of strings or token lists")
    dims = body.get("dimensions", DEFAULT_DIMENSIONS)
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 8192:
        raise ValueError("'dimensions' must be an integer between 1 and 8192")
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for i, text in enumerate(texts):
        vector = embedding(text, dims)
        encoded = base64.b64encode(vector.astype("<f4").tobytes()).decode() if as_base64 else vector.tolist()
        data.append({"object": "embedding", "index": i, "embedding": encoded})
    tokens = sum(count_tokens(t) for t in texts)
    return {"object": "list", "data": data, "model": body.get("model") or "fake-embedding",
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
