"""Word-level diff of two prompt versions, field by field (`flywheel prompts diff NAME A B`).

    for field, ops in prompt_diff(old, new).items():   # only the fields that differ
        print(field, render_word_diff(ops))             # "Be [-brief-]{+very brief+}."

Tokens are those of `flywheel.text.diff` (the evals report's too): words, single punctuation marks and runs of
whitespace, and single characters in Chinese and Japanese text (which has no spaces between words).
"""

from __future__ import annotations

import yaml

from flywheel.prompts.prompt import Prompt
from flywheel.text.diff import Op, word_diff

__all__ = ["FIELDS", "Op", "collapse", "dump_yaml", "field_text", "prompt_diff", "render_word_diff", "word_diff"]
FIELDS = ("system", "template", "examples", "shots", "prefill", "reasoning", "format", "sources", "no_answer")


def render_word_diff(ops: list[tuple[Op, str]]) -> str:
    """Runs as text: `[-removed-]{+added+}` (like `git diff --word-diff`)."""
    marks = {"delete": ("[-", "-]"), "insert": ("{+", "+}"), "equal": ("", "")}
    return "".join(f"{marks[op][0]}{text}{marks[op][1]}" for op, text in ops)


def collapse(ops: list[tuple[Op, str]], context: int = 3) -> list[tuple[Op, str]]:
    """`ops` with the middle of each long unchanged run replaced by `… N unchanged lines …`, keeping `context`
    lines next to each change (a field of 500 examples with one edit prints that edit, not all 500)."""
    out: list[tuple[Op, str]] = []
    for n, (op, text) in enumerate(ops):
        lines = text.split("\n")
        keep_head = context + 1 if n > 0 else 0  # the end of the line a change is on, and `context` more
        keep_tail = context + 1 if n < len(ops) - 1 else 0
        if op != "equal" or len(lines) <= keep_head + keep_tail + 1:
            out.append((op, text))
            continue
        hidden = len(lines) - keep_head - keep_tail
        head = "\n".join(lines[:keep_head]) + ("\n" if keep_head else "")
        tail = ("\n" if keep_tail else "") + "\n".join(lines[len(lines) - keep_tail:]) if keep_tail else ""
        out.append((op, f"{head}… {hidden} unchanged line(s) …{tail}"))
    return out


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # multi-line text as a block, as people write it; line breaks alone ("\n\n") quoted, not folded over lines
    style = "|" if "\n" in value.strip("\n") else '"' if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(data: object) -> str:
    """Prompt content as readable YAML (multi-line strings as blocks, keys in content order)."""
    return yaml.dump(data, Dumper=_Dumper, allow_unicode=True, sort_keys=False, width=100).rstrip("\n")


def field_text(prompt: Prompt, field: str) -> str:
    value = prompt.content().get(field)
    if value is None:
        return ""
    return value if isinstance(value, str) else dump_yaml(value)


def prompt_diff(old: Prompt, new: Prompt) -> dict[str, list[tuple[Op, str]]]:
    """The word diff of each field whose text differs between two versions."""
    out: dict[str, list[tuple[Op, str]]] = {}
    for field in FIELDS:
        a, b = field_text(old, field), field_text(new, field)
        if a != b:
            out[field] = word_diff(a, b)
    return out
