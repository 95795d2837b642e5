"""What the trace page pulls out of a trace's spans: the final prompt as sent, the retrieved sources with their
scores, and the guard actions; and the eval suite files the "add to eval suite" action may write."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flywheel.errors import UserError

SUITE_DIR = "evals"
# letters and digits of any script (`flywheel promote --to evals/回归.yaml` writes such a file, and the page lists it)
_SUITE_NAME = re.compile(r"^\w[\w./-]{0,199}$")


def final_prompt(spans: list[dict[str, Any]], bodies: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The inputs of the last model call (kind llm) that has stored inputs: messages and parameters."""
    calls = [s for s in spans if s["kind"] == "llm" and s["span_id"] in bodies]
    for span in sorted(calls, key=lambda s: s["start_ns"], reverse=True):
        inputs = bodies[span["span_id"]].get("inputs")
        if inputs is None:
            continue
        messages = inputs.get("messages") if isinstance(inputs, dict) else None
        text: str | None
        if isinstance(messages, list):
            text = "\n\n".join(_message(m) if isinstance(m, dict) else str(m) for m in messages)
        else:
            text = inputs if isinstance(inputs, str) else None
        params = inputs.get("params") if isinstance(inputs, dict) else None
        return {"span": span, "text": text, "raw": inputs if text is None else None, "params": params}
    return None


def _message(m: dict[str, Any]) -> str:
    """One message of the prompt: its role, text, and the tool calls an assistant made (an imported agent's
    earlier turn has no text, only calls) or the call a tool message answers."""
    role = str(m.get("role", "?"))
    if m.get("tool_call_id"):
        role += f" {m['tool_call_id']}"
    lines = [f"[{role}]", _content(m.get("content"))]
    for call in m.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            lines.append(f"→ {fn.get('name', '?')}({fn.get('arguments') or ''})")
        else:
            lines.append(f"→ {call}")
    return "\n".join(line for line in lines[:1] + [x for x in lines[1:] if x])


def _content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones, name the others
        return "\n".join(p.get("text", "") if isinstance(p, dict) and p.get("type") == "text"
                         else f"<{p.get('type', 'part') if isinstance(p, dict) else 'part'}>" for p in content)
    return "" if content is None else str(content)


def retrieved_sources(spans: list[dict[str, Any]], bodies: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for span in spans:
        if span["kind"] != "retrieval" or span["span_id"] not in bodies:
            continue
        hits = bodies[span["span_id"]].get("outputs")
        if isinstance(hits, list):
            out.extend({"span_id": span["span_id"], "source": h.get("source"), "chunk_id": h.get("chunk_id"),
                        "score": h.get("score")} for h in hits if isinstance(h, dict))
    return out[:100]


def guard_actions(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for span in spans:
        attrs = span.get("attributes") or {}
        if span["kind"] == "guard" and isinstance(attrs, dict):
            out.append({"span_id": span["span_id"], "check": attrs.get("flywheel.guard.check") or span["name"],
                        "action": attrs.get("flywheel.guard.action", "?"), "error": span.get("error")})
    return out


def suite_files(root: Path) -> list[str]:
    """The suite files under the project's evals/ folder, relative to it (e.g. `regressions.yaml`)."""
    base = root / SUITE_DIR
    if not base.is_dir():
        return []
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.suffix in (".yaml", ".yml")
                  and p.is_file() and not any(part.startswith(".") for part in p.relative_to(base).parts))


def suite_path(root: Path, name: str) -> Path:
    """evals/<name> (`.yaml` added when it has no suffix); UserError when the name would leave evals/."""
    name = name.strip().removeprefix(f"{SUITE_DIR}/")
    if not _SUITE_NAME.match(name) or ".." in name.split("/") or name.startswith("/"):
        raise UserError(f"invalid suite file name {name!r}",
                        hint="letters, digits and _.-/ inside evals/, e.g. regressions.yaml")
    if Path(name).suffix not in (".yaml", ".yml"):
        name += ".yaml"
    base = (root / SUITE_DIR).resolve()
    path = (base / name).resolve()
    if base not in path.parents:
        raise UserError(f"suite file {name!r} is outside {SUITE_DIR}/", hint="choose a name inside evals/")
    return path
