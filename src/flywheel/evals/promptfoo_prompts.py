"""promptfoo `prompts:` as flywheel prompts: inline text, `file://` text (split on `---` lines), chat arrays
(.json / .yaml, or text that is a JSON array), `{raw|id, label}`, `{label, messages: [{role, content}]}` with
`file://` contents, and bare file names (`prompts: [prompts.txt]`, promptfoo's legacy form).

A chat array's system messages become the system prompt, earlier user/assistant turns go before the request,
the last user message is the template; content given as parts (`[{type: text, text: …}]`) is joined.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flywheel.config import read_user_text, read_yaml
from flywheel.errors import UserError
from flywheel.evals.promptfoo_templates import Template, translate
from flywheel.evals.promptfoo_tests import TEXT_SUFFIXES, file_ref, resolve

CODE_SUFFIXES = (".py", ".js", ".ts", ".mjs", ".cjs")
PROMPT_KEYS = frozenset({"id", "raw", "label", "messages"})


@dataclass
class PromptSpec:
    label: str
    template: Template
    system: Template | None
    shots: list[dict[str, Any]]
    where: str
    ref: str = ""  # what the config wrote (`file://p.txt`, the raw text): providers' `prompts:` may name it


def read_prompts(value: Any, base: Path, at: Callable[..., str]) -> list[PromptSpec]:
    entries: list[tuple[Any, str | None, str]] = []
    if isinstance(value, dict):  # {file://a.txt: label}
        entries = [(k, v, at("prompts", k)) for k, v in value.items()]
    else:
        for i, item in enumerate(value if isinstance(value, list) else [value]):
            where = at("prompts", i) if isinstance(value, list) else at("prompts")
            if isinstance(item, dict):
                unknown = set(item) - PROMPT_KEYS
                if unknown:
                    raise UserError(
                        f"prompt key(s) {', '.join(sorted(map(str, unknown)))} are not supported",
                        where=where,
                        hint="a prompt is text, file://…, {raw|id, label} or {label, messages}",
                    )
                if "messages" in item:
                    messages = _loaded_messages(item["messages"], base, where)
                    entries.append(
                        (messages, str(item.get("label") or item.get("id") or f"chat {i + 1}"), where)
                    )
                    continue
                entries.append((item.get("raw", item.get("id")), item.get("label"), where))
            else:
                entries.append((item, None, where))
    prompts: list[PromptSpec] = []
    for raw, label, where in entries:
        if isinstance(raw, list):  # {label, messages}
            prompts.append(_chat(raw, str(label), where, str(label)))
            continue
        if not isinstance(raw, str) or not raw.strip():
            raise UserError(f"a prompt must be text or file://PATH, got {raw!r}", where=where)
        ref = file_ref(raw) or _bare_file(raw, base)
        if ref is None:
            prompts.append(_prompt(raw, label or _short(raw), where, raw))
            continue
        for path in resolve(base, ref, where, "prompt"):
            prompts.extend(_file_prompts(path, label, where, raw))
    labels = [p.label for p in prompts]
    for i, p in enumerate(prompts):
        if labels.count(labels[i]) > 1:  # two prompts with one label: number them, suite names stay unique
            p.label = f"{labels[i]} #{labels[:i].count(labels[i]) + 1}"
    return prompts


def _bare_file(raw: str, base: Path) -> str | None:
    """promptfoo reads `prompts: [prompts.txt]` as a file when the name has no newline, no `{{` and a
    prompt-file suffix and the file exists."""
    text = raw.strip()
    if "\n" in text or "{{" in text or not text.lower().endswith((*TEXT_SUFFIXES, ".json", ".yaml", ".yml")):
        return None
    return text if (base / text).is_file() else None


def _loaded_messages(messages: Any, base: Path, where: str) -> list[Any]:
    """`messages:` of a prompt entry with each `file://` content read as text."""
    if not isinstance(messages, list):
        raise UserError("a prompt's `messages` must be a list of {role, content}", where=where)
    out = []
    for m in messages:
        content = m.get("content") if isinstance(m, dict) else None
        ref = file_ref(content)
        if ref is not None:
            (path,) = resolve(base, ref, where, "message content")[:1]
            if path.suffix.lower() in CODE_SUFFIXES:
                raise UserError(
                    f"message content {path.name}: flywheel runs no code to build prompts",
                    where=where,
                    hint="write the message as text (.txt, .md, .j2)",
                )
            m = {**m, "content": read_user_text(path).rstrip("\n")}
        out.append(m)
    return out


def _file_prompts(path: Path, label: str | None, where: str, ref: str) -> list[PromptSpec]:
    suffix = path.suffix.lower()
    if suffix in CODE_SUFFIXES:
        raise UserError(
            f"prompt file {path.name}: flywheel runs no code to build prompts",
            where=where,
            hint="write the prompt as text (.txt) or a chat array (.json / .yaml)",
        )
    if suffix in (".json", ".yaml", ".yml"):
        data, _ = read_yaml(path)
        if isinstance(data, dict) and isinstance(data.get("messages"), list):  # {messages: [...]}
            data = data["messages"]
        return [_chat(data, label or path.name, f"{path}:1", ref)]
    parts = _split_text(read_user_text(path))
    if not parts:
        raise UserError(f"prompt file {path.name} is empty", where=where)
    return [
        _prompt(p, label or (path.name if len(parts) == 1 else f"{path.name}: {i}"), f"{path}:1", ref)
        for i, p in enumerate(parts, start=1)
    ]


def _split_text(text: str) -> list[str]:
    """A text prompt file as promptfoo reads it: prompts separated by `---` lines, each trimmed, empty ones
    dropped."""
    parts: list[str] = []
    buffer: list[str] = []
    for line in [*text.splitlines(), "---"]:
        if line.strip() == "---":
            part = "\n".join(buffer).strip()
            if part:
                parts.append(part)
            buffer = []
        else:
            buffer.append(line)
    return parts


def _prompt(text: str, label: str, where: str, ref: str) -> PromptSpec:
    stripped = text.strip()
    if stripped.startswith("[") and stripped.endswith("]"):
        try:
            return _chat(json.loads(stripped), label, where, ref)
        except ValueError:
            pass  # not JSON: a text prompt that happens to be in brackets
    return PromptSpec(label, translate(text, where), None, [], where, ref)


def _text_of(content: Any, where: str) -> Any:
    """Message content as text: a string, or parts `[{type: text, text}]` joined (other parts: an error)."""
    if not isinstance(content, list):
        return content
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise UserError(
                f"message content part `{kind}` is not supported",
                where=where,
                hint="model targets send text: use `{type: text, text: …}` parts or a plain string",
            )
    return "\n".join(t.rstrip("\n") for t in texts)


def _chat(messages: Any, label: str, where: str, ref: str) -> PromptSpec:
    """A chat array: system messages, earlier user/assistant turns (sent before the request, as n-shot
    examples), and the final user message (the template)."""
    if isinstance(messages, list):
        messages = [
            {**m, "content": _text_of(m.get("content"), where)} if isinstance(m, dict) else m
            for m in messages
        ]
    ok = (
        isinstance(messages, list)
        and messages
        and all(
            isinstance(m, dict)
            and m.get("role") in ("system", "user", "assistant")
            and isinstance(m.get("content"), str)
            for m in messages
        )
    )
    if not ok or messages[-1]["role"] != "user":
        raise UserError(
            "a chat prompt must be a list of {role, content} messages ending with a user message",
            where=where,
            hint='[{"role": "system", "content": "…"}, {"role": "user", "content": "{{q}}"}]',
        )
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [m for m in messages[:-1] if m["role"] != "system"]
    if any("{{" in m["content"] for m in turns):
        raise UserError(
            "variables in earlier chat turns are not supported",
            where=where,
            hint="put {{ variables }} in the system message or the last user message",
        )
    if turns and turns[-1]["role"] != "assistant":
        raise UserError(
            "a chat prompt's user messages must alternate with assistant messages",
            where=where,
            hint="merge consecutive user messages into the last one",
        )
    shots = [{"messages": [{"role": m["role"], "content": m["content"]} for m in turns]}] if turns else []
    return PromptSpec(
        label,
        translate(messages[-1]["content"], where),
        translate(system, where) if system else None,
        shots,
        where,
        ref,
    )


def flywheel_prompt(spec: PromptSpec) -> Any:
    from flywheel.prompts.examples import Example
    from flywheel.prompts.registry import Prompt

    return Prompt(
        name=_slug(spec.label),
        template=spec.template.text,
        system=spec.system.text if spec.system else "",
        examples=tuple(Example.model_validate(s) for s in spec.shots),
    )


def used_vars(prompt: PromptSpec) -> set[str]:
    used = prompt.template.variables()
    return used | prompt.system.variables() if prompt.system is not None else used


def _short(text: str, n: int = 40) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= n else flat[: n - 1] + "…"


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text).strip("-")[:60] or "prompt"
