"""Reviewed production traces → fine-tuning and eval data (`flywheel export sft|dpo|openai-ft|hf|eval OUT`).

- sft: `{"messages": [<the exact final prompt sent: system, few-shot, context, user>, {"role": "assistant",
  "content": answer}], "source_trace_id"}` for items the annotators' majority passed (the correction, when one was
  written, replaces the answer) and for failed items that carry a correction.
- dpo: `{"prompt": [messages], "chosen": [{"role": "assistant", …}], "rejected": [...], "source_trace_id"}` (TRL's
  conversational preference format) from pairwise verdicts (winner vs loser) and from corrections vs the served
  answer.
- openai-ft: OpenAI's chat fine-tuning format (`{"messages": [...]}`, nothing else on the line, validated with
  `validate_openai`); `source_trace_id` of each line is in the line-aligned `OUT.sources.jsonl`.
- hf: a folder with `train.jsonl`, `holdout.jsonl` (sft rows) and a dataset card (`README.md`), loadable with
  `datasets.load_dataset("json", data_files={"train": …, "holdout": …})` or `load_dataset(FOLDER)`.
- eval: an eval suite YAML written by the promote writer (flywheel.evals.promote.write_suite).

PII is pseudonymised per row with promote's masker (flywheel.checks.pii.pseudonymize: the same value is the same
`<EMAIL_ADDRESS_1>` in the prompt and in the answer; `keep_pii` names the fields whose own values stay, see
flywheel.evals.promote_pii) and secrets always scrubbed, near-duplicate inputs collapsed with promote's `collapse`, and the train / holdout split is by normalised input (flywheel.loop.labelled.split), checked again
before writing. Every file, datasheet included, is written to a temporary name and renamed at the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flywheel.checks.pii import pseudonymize
from flywheel.errors import UserError
from flywheel.evals.promote import collapse, mask_text
from flywheel.evals.promote_pii import DPO_FIELDS, SFT_FIELDS, PiiTally, fields_of, keep_fields
from flywheel.evals.promote_sources import Source, earlier_turns
from flywheel.loop import datasheet
from flywheel.loop.atomic import write_all, write_folder
from flywheel.loop.labelled import (
    Collected,
    Labelled,
    add_trace_facts,
    check_no_leak,
    collect,
    corrections,
    norm_input,
    split,
)

if TYPE_CHECKING:
    from flywheel.config import Project
    from flywheel.store import Store

FORMATS = ("sft", "dpo", "openai-ft", "hf", "eval")
OPENAI_ROLES = ("system", "user", "assistant", "tool")
OPENAI_MESSAGE_KEYS = {"role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call"}
OPENAI_MIN_EXAMPLES = 10
OPENAI_MAX_TOKENS = 65_536  # per example, for the current chat models (estimated here at 4 characters a token)


@dataclass
class ExportResult:
    format: str
    files: list[str]
    counts: dict[str, int]
    datasheet: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "files": self.files, "counts": self.counts, "warnings": self.warnings,
                "datasheet": self.datasheet}


# ---------------------------------------------------------------------------- rows


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return "" if content is None else str(content)


# roles other SDKs record (OpenAI's `developer` for reasoning models, Gemini's `model`) under the chat names
_ROLE_ALIASES = {"developer": "system", "model": "assistant"}


def _message(m: dict[str, Any]) -> dict[str, Any]:
    """One prompt message in the chat fine-tuning shape: an assistant turn that called tools keeps its
    `tool_calls` (and has no `content` when it said nothing), a tool result keeps its `tool_call_id`."""
    role = str(m.get("role", "user"))
    out: dict[str, Any] = {"role": _ROLE_ALIASES.get(role, role), "content": _text(m.get("content"))}
    calls = [c for c in m.get("tool_calls") or [] if isinstance(c, dict)] if out["role"] == "assistant" else []
    if calls:
        out["tool_calls"] = [_tool_call(c) for c in calls]
        if not out["content"].strip():
            del out["content"]
    if out["role"] == "tool" and isinstance(m.get("tool_call_id"), str):
        out["tool_call_id"] = m["tool_call_id"]
    if out["role"] != "tool" and isinstance(m.get("name"), str) and m["name"]:
        out["name"] = m["name"]
    return out


def _tool_call(call: dict[str, Any]) -> dict[str, Any]:
    raw = call.get("function")
    function: dict[str, Any] = raw if isinstance(raw, dict) else {}
    arguments = function.get("arguments", "")
    return {"id": str(call.get("id") or ""), "type": "function",
            "function": {"name": str(function.get("name") or ""),
                         "arguments": arguments if isinstance(arguments, str) else json.dumps(arguments)}}


def prompt_messages(x: Labelled) -> list[dict[str, Any]]:
    """The exact final prompt the answer was generated from (not masked yet, see `mask_row`), without a trailing
    assistant turn; tool calls and tool results kept."""
    messages = [_message(m) for m in x.prompt if isinstance(m, dict)]
    # a turn with no text and no tool call (an empty system prompt, an image-only user turn) has nothing a chat
    # fine-tune can hold: OpenAI refuses a line with one, so it would block the whole file
    messages = [m for m in messages if m["role"] == "tool" or "tool_calls" in m or m["content"].strip()]
    while messages and messages[-1]["role"] == "assistant" and "tool_calls" not in messages[-1]:
        messages.pop()
    if not messages or not any(m["role"] == "user" for m in messages):
        messages.append({"role": "user", "content": x.input or ""})
    return messages


def _assistant(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text or ""}


NO_ANSWER = "no answer recorded on the trace"


def sft_rows(items: list[Labelled], verdict: str = "pass",
             dropped: dict[str, int] | None = None) -> list[tuple[Labelled, dict[str, Any]]]:
    """Unmasked SFT rows (mask each with `mask_row` before it leaves the process). Items with nothing to train
    on (no answer stored, no correction) are counted in `dropped`."""
    out = []
    for x in items:
        if x.kind != "binary":
            continue
        if (verdict == "pass" and x.verdict == "pass") or (x.verdict == "fail" and x.correction):
            answer = x.correction or x.output
            if answer.strip():
                out.append((x, {"messages": [*prompt_messages(x), _assistant(answer)], "source_trace_id": x.trace_id}))
            elif dropped is not None:
                dropped[NO_ANSWER] = dropped.get(NO_ANSWER, 0) + 1
    return out


def dpo_rows(items: list[Labelled]) -> list[tuple[Labelled, dict[str, Any]]]:
    """Unmasked DPO rows (mask each with `mask_row` before it leaves the process)."""
    out = []
    for x in items:
        row: dict[str, Any]
        if x.kind == "pairwise" and x.verdict in ("a", "b") and x.output_b is not None:
            win, lose = (x.output, x.output_b) if x.verdict == "a" else (x.output_b, x.output)
            ids = (x.trace_id, x.trace_id_b) if x.verdict == "a" else (x.trace_id_b, x.trace_id)
            row = {"prompt": prompt_messages(x), "chosen": [_assistant(win)], "rejected": [_assistant(lose)],
                   "source_trace_id": ids[0], "rejected_trace_id": ids[1]}
        elif x.kind == "binary" and x.correction and x.correction.strip() != x.output.strip():
            row = {"prompt": prompt_messages(x), "chosen": [_assistant(x.correction)],
                   "rejected": [_assistant(x.output)], "source_trace_id": x.trace_id}
        else:
            continue
        if row["chosen"][0]["content"].strip() and row["rejected"][0]["content"].strip():
            out.append((x, row))
    return out


def mask_row(x: Labelled, row: dict[str, Any], keep: frozenset[str] = frozenset(),
             tally: PiiTally | None = None) -> dict[str, Any]:
    """An SFT or DPO row with its personal data pseudonymised consistently across its fields (prompt, answer /
    chosen, rejected) and secrets scrubbed; `keep`: the fields whose own values stay."""
    if "messages" in row:
        parts = {"prompt": row["messages"][:-1], "answer": row["messages"][-1:]}
        fields: tuple[str, ...] = SFT_FIELDS
    else:
        parts = {name: row[name] for name in DPO_FIELDS}
        fields = DPO_FIELDS
    # every text of a field, its messages' contents and then their tool calls' arguments, masked as one record
    masked = pseudonymize({name: [str(m.get("content") or "") for m in parts[name]]
                                 + [c["function"]["arguments"] for m in parts[name] for c in m.get("tool_calls", [])]
                           for name in fields}, keep)
    if tally is not None:
        tally.add(masked, correction=bool(x.correction) and x.kind == "binary")
    new = {name: _with_masked(parts[name], masked.fields[name]) for name in fields}
    if "messages" in row:
        return {**row, "messages": new["prompt"] + new["answer"]}
    return {**row, **new}


def _with_masked(messages: list[dict[str, Any]], texts: list[str | None]) -> list[dict[str, Any]]:
    """`messages` with their contents and tool-call arguments replaced by the masked `texts` (in `mask_row`'s
    order)."""
    args = iter(texts[len(messages):])
    out = []
    for m, text in zip(messages, texts, strict=False):
        new = {**m, "content": text or ""} if "content" in m else dict(m)
        if "tool_calls" in m:
            new["tool_calls"] = [{**c, "function": {**c["function"], "arguments": next(args) or ""}}
                                 for c in m["tool_calls"]]
        out.append(new)
    return out


def validate_openai(rows: list[dict[str, Any]]) -> list[str]:
    """Problems OpenAI's chat fine-tuning would reject, one line each (`line N: …`); empty when the file is good."""
    errors = []
    for n, row in enumerate(rows, 1):
        messages = row.get("messages") if isinstance(row, dict) else None
        if not isinstance(messages, list) or not messages:
            errors.append(f"line {n}: no `messages` list")
            continue
        extra = set(row) - {"messages", "tools", "parallel_tool_calls"}
        if extra:
            errors.append(f"line {n}: unknown key(s) {sorted(extra)}")
        chars = 0
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in OPENAI_ROLES:
                errors.append(f"line {n}, message {i}: role must be one of {', '.join(OPENAI_ROLES)}")
                continue
            if set(m) - OPENAI_MESSAGE_KEYS:
                errors.append(f"line {n}, message {i}: unknown key(s) {sorted(set(m) - OPENAI_MESSAGE_KEYS)}")
            content = m.get("content")
            if not (isinstance(content, str) and content.strip()) and not m.get("tool_calls"):
                errors.append(f"line {n}, message {i}: empty content")
            if "weight" in m and m["weight"] not in (0, 1):
                errors.append(f"line {n}, message {i}: weight must be 0 or 1")
            chars += len(content) if isinstance(content, str) else 0
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
            errors.append(f"line {n}: no assistant message to learn from")
        elif not (isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant"):
            errors.append(f"line {n}: the last message must be the assistant's")
        if chars / 4 > OPENAI_MAX_TOKENS:
            errors.append(f"line {n}: about {chars // 4} tokens, over the {OPENAI_MAX_TOKENS} per example")
    return errors


# ---------------------------------------------------------------------------- dedup and split


def _question(x: Labelled) -> str:
    """The user's input of a row (masked): what near-duplicates and the split are judged on, not the retrieved
    context around it in the prompt (two questions over the same passages are different inputs)."""
    return mask_text(x.input) or ""


def dedupe(rows: list[tuple[Labelled, dict[str, Any]]], embedder: Any = None
           ) -> tuple[list[tuple[Labelled, dict[str, Any]]], int]:
    """Rows whose input is a near-duplicate of an earlier row's are dropped (promote's rule)."""
    keyed = [Source(trace_id=str(i), input=_question(x), output="") for i, (x, _) in enumerate(rows)]
    kept, _, _ = collapse(keyed, [], embedder)
    keep = {int(s.trace_id) for s in kept}
    return [r for i, r in enumerate(rows) if i in keep], len(rows) - len(keep)


def split_rows(rows: list[tuple[Labelled, dict[str, Any]]], train_share: float, seed: int
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    questions = [_question(x) for x, _ in rows]
    keys = [norm_input(q) for q in questions]
    train_keys, _ = split(keys, train_share, seed) if rows else (set(), set())
    side = [k in train_keys for k in keys]
    train = [row for (_, row), t in zip(rows, side, strict=True) if t]
    holdout = [row for (_, row), t in zip(rows, side, strict=True) if not t]
    check_no_leak([q for q, t in zip(questions, side, strict=True) if t],
                  [q for q, t in zip(questions, side, strict=True) if not t])
    return train, holdout


# ---------------------------------------------------------------------------- export


def gather(store: Store, *, queue: str | None = None, since: float | None = None, app: str | None = None,
           min_agreement: float | None = None) -> Collected:
    """Labelled items, plus traces corrected through `correction` feedback outside any queue (as `fail` items)."""
    from flywheel.feedback.content import trace_contents

    collected = collect(store, queue, since=since, app=app, min_agreement=min_agreement)
    # an item no annotator corrected takes the trace's own `correction` feedback (a user's or an API client's)
    fixes = corrections(store, [x.trace_id for x in collected.items if x.kind == "binary" and not x.correction])
    for x in collected.items:
        if not x.correction and x.trace_id in fixes:
            x.correction = fixes[x.trace_id]
    if queue is None:
        ft = store.table("feedback")
        from sqlalchemy import select

        with store.connect() as conn:
            ids = list(dict.fromkeys(conn.scalars(select(ft.c.trace_id).where(ft.c.name == "correction"))))
        # a trace the annotators labelled stays their decision: a tie or an item below --min-agreement that was
        # left out must not come back as a user's correction
        seen = collected.reviewed | {x.trace_id for x in collected.items} \
            | {x.trace_id_b for x in collected.items if x.trace_id_b}
        ids = [t for t in ids if t not in seen]
        fixes, contents = corrections(store, ids), trace_contents(store, ids)
        extra = [Labelled(item_id="", queue="", kind="binary", trace_id=t, verdict="fail", agreement=1.0, n_labels=0,
                          input=c["input"], output=c["output"], prompt=c["prompt"], sources=c["sources"],
                          correction=fixes.get(t)) for t, c in contents.items() if fixes.get(t)]
        if extra:
            add_trace_facts(store, extra)
            extra = [x for x in extra if (since is None or (x.started_at or 0) >= since) and (app is None or x.app == app)]
            collected.items += extra
    return collected


def export(store: Store, fmt: str, out: Path, *, project: Project | None = None, queue: str | None = None,
           since: float | None = None, app: str | None = None, verdict: str = "pass",
           min_agreement: float | None = None, train_share: float = 0.9, seed: int = 0, embedder: Any = None,
           target: str | None = None, keep_pii: str | list[str] | None = None) -> ExportResult:
    """`keep_pii`: the fields whose own personal data stays ("reference", "prompt,answer", "all", …; see
    flywheel.evals.promote_pii); None: the project's `review.keep_pii`, else none. Secrets are always masked."""
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}", hint=f"one of {', '.join(FORMATS)}")
    if keep_pii is None and project is not None:
        keep = keep_fields(project.config.review.keep_pii, fields_of(fmt), option="review.keep_pii",
                           where=str(project.root / "flywheel.yaml"))
    else:
        keep = keep_fields(keep_pii, fields_of(fmt))
    collected = gather(store, queue=queue, since=since, app=app, min_agreement=min_agreement)
    options = {"queue": queue, "since": since, "app": app, "verdict": verdict, "min_agreement": min_agreement,
               "split": train_share, "seed": seed, "keep_pii": sorted(keep)}
    if fmt == "eval":
        return _export_eval(collected, out, project, verdict, embedder, target, options, keep)
    unusable: dict[str, int] = {}
    rows = dpo_rows(collected.items) if fmt == "dpo" else sft_rows(collected.items, verdict, unusable)
    if not rows:
        what = "pairwise verdicts or corrections" if fmt == "dpo" else f"items labelled {verdict} or corrected"
        left_out = {**collected.dropped, **unusable}
        why = ", ".join(f"{k}: {v}" for k, v in left_out.items() if v)
        raise UserError(f"no {what} to export" + (f" (left out: {why})" if why else ""),
                        hint="label first: `flywheel review sample -n 50` then `flywheel review`"
                             + (" (`--kind pairwise` for A/B preferences)" if fmt == "dpo" else ""))
    rows, n_dupes = dedupe(rows, embedder)
    tally = PiiTally(fields_of(fmt), keep)
    rows = [(x, mask_row(x, row, keep, tally)) for x, row in rows]
    used = [x for x, _ in rows]
    train, holdout = split_rows(rows, train_share, seed)
    warnings: list[str] = [w for w in [tally.warning()] if w]
    files: dict[Path, str] = {}
    if fmt == "openai-ft":
        train = [{"messages": r["messages"]} | {"_id": r["source_trace_id"]} for r in train]
        holdout = [{"messages": r["messages"]} | {"_id": r["source_trace_id"]} for r in holdout]
        problems = validate_openai([{"messages": r["messages"]} for r in train + holdout])
        if problems:
            raise UserError("the rows break OpenAI's fine-tuning rules: " + "; ".join(problems[:5]),
                            hint="nothing was written")
        if len(train) < OPENAI_MIN_EXAMPLES:
            warnings.append(f"OpenAI fine-tuning needs at least {OPENAI_MIN_EXAMPLES} training examples; "
                            f"this file has {len(train)}")
        for part, part_rows in (("", train), (".holdout", holdout)):
            if part and not part_rows:
                continue
            path = _sibling(out, part)
            files[path] = _jsonl([{"messages": r["messages"]} for r in part_rows])
            files[_sibling(path, ".sources")] = _jsonl([{"source_trace_id": r["_id"]} for r in part_rows])
    elif fmt == "hf":
        files[out / "train.jsonl"] = _jsonl(train)
        if holdout:
            files[out / "holdout.jsonl"] = _jsonl(holdout)
    else:
        files[out] = _jsonl(train)
        if holdout:
            files[_sibling(out, ".holdout")] = _jsonl(holdout)
    counts = {"train": len(train), "holdout": len(holdout)}
    base = out / "datasheet" if fmt == "hf" else _sibling(out, ".datasheet", suffix="")
    names = [str(p) for p in files]
    sheet = datasheet.build(fmt, collected, used, counts, {**unusable, "near-duplicates": n_dupes}, options, names,
                            warnings, tally.to_dict())
    _same_created_at(sheet, _ext(base, ".json"))
    if fmt == "hf":
        files[out / "README.md"] = _card(sheet, bool(holdout))
    files[_ext(base, ".md")] = datasheet.render(sheet)
    files[_ext(base, ".json")] = json.dumps(sheet, indent=2, ensure_ascii=False) + "\n"
    if fmt == "hf":
        write_folder(out, files)
    else:
        write_all(files)
    return ExportResult(fmt, [str(p) for p in files], counts, sheet, warnings)


def _export_eval(collected: Collected, out: Path, project: Project | None, verdict: str, embedder: Any,
                 target: str | None, options: dict[str, Any], keep: frozenset[str]) -> ExportResult:
    from flywheel.evals.promote import write_suite

    if project is None:
        raise UserError("an eval export needs the project (its apps name the suite's target)")
    picked = [x for x in collected.items if x.kind == "binary" and x.verdict == verdict]
    if not picked:
        raise UserError(f"no item has the human majority verdict {verdict}", hint="see `flywheel review agreement`")
    sources = [Source(trace_id=x.trace_id, input=x.input, output=x.output,
                      context=[str(s["text"]) for s in x.sources if isinstance(s, dict) and s.get("text")],
                      reason="; ".join(x.reasons) or None, correction=x.correction, app=x.app, verdict=verdict,
                      description=f"exported from queue {x.queue}: {verdict} ({x.agreement:.0%} agreement)",
                      extra={"queue": x.queue or None, "item_id": x.item_id or None},
                      history=[] if x.app else earlier_turns(x.prompt, x.input)) for x in picked]
    result = write_suite(project, out, sources, target=target, embedder=embedder, keep=keep)
    used = picked
    counts = {"cases": len(result.written), "already in the suite": len(result.skipped_existing)}
    sheet = datasheet.build("eval", collected, used, counts, {"near-duplicates": sum(map(len, result.collapsed.values()))},
                            options, [str(out)], result.warnings, result.pii)
    base = _sibling(out, ".datasheet", suffix="")
    write_all({_ext(base, ".md"): datasheet.render(sheet),
                _ext(base, ".json"): json.dumps(sheet, indent=2, ensure_ascii=False) + "\n"})
    return ExportResult("eval", [str(out), str(_ext(base, ".md")), str(_ext(base, ".json"))], counts, sheet,
                        list(result.warnings))


# ---------------------------------------------------------------------------- files


def _sibling(path: Path, tag: str, suffix: str | None = None) -> Path:
    """sft.jsonl + ".holdout" → sft.holdout.jsonl (the suffix kept unless one is given)."""
    ext = path.suffix if suffix is None else suffix
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return path.with_name(f"{stem}{tag}{ext}")


def _same_created_at(sheet: dict[str, Any], path: Path) -> None:
    """Exporting the same data again writes the same files: when the datasheet already there says everything the
    new one says, its `created_at` is kept."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(old, dict) and isinstance(old.get("created_at"), str) and \
            {**old, "created_at": None} == {**json.loads(json.dumps(sheet)), "created_at": None}:
        sheet["created_at"] = old["created_at"]


def _ext(base: Path, ext: str) -> Path:
    return base.with_name(base.name + ext)


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def _card(sheet: dict[str, Any], holdout: bool) -> str:
    splits = "    - split: train\n      path: train.jsonl\n" + (
        "    - split: holdout\n      path: holdout.jsonl\n" if holdout else "")
    rows = sheet["rows"]
    return ("---\nconfigs:\n  - config_name: default\n    data_files:\n" + splits +
            "task_categories:\n  - text-generation\n---\n\n# Reviewed production answers (SFT)\n\n"
            "Chat rows `{\"messages\": [...], \"source_trace_id\": ...}` exported by `flywheel export hf` from "
            "human-reviewed traces: the exact prompt the model was sent, and the answer reviewers passed (or their "
            f"correction). {rows['train']} train / {rows['holdout']} holdout rows; no input is in both.\n\n"
            "```python\nfrom datasets import load_dataset\nds = load_dataset(\"json\", data_files={\"train\": "
            "\"train.jsonl\"" + (", \"holdout\": \"holdout.jsonl\"" if holdout else "") + "})\n```\n\n"
            "See `datasheet.md` for sources, label agreement, the date range and what was left out.\n")
