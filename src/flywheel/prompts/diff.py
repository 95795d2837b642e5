"""Word-level diff of two prompt versions, field by field (`flywheel prompts diff NAME A B`).

    for field, ops in prompt_diff(old, new).items():   # only the fields that differ
        print(field, render_word_diff(ops))             # "Be [-brief-]{+very brief+}."

Tokens are words, single punctuation marks and runs of whitespace. (Chinese and Japanese runs are one token
each here; a CJK-aware word diff lives in the evals report and should move down to `flywheel.text`.)
"""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Literal

import yaml

from flywheel.prompts.prompt import Prompt

Op = Literal["equal", "delete", "insert"]
_TOKEN = re.compile(r"\s+|\w+|[^\w\s]", re.UNICODE)
FIELDS = ("system", "template", "examples", "shots", "prefill", "reasoning", "format", "sources", "no_answer")


def word_diff(old: str, new: str) -> list[tuple[Op, str]]:
    """`new` against `old` as (op, text) runs: equal, delete (only in old), insert (only in new)."""
    a, b = _TOKEN.findall(old), _TOKEN.findall(new)
    out: list[tuple[Op, str]] = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if tag == "equal":
            out.append(("equal", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            out.append(("delete", "".join(a[i1:i2])))
        if j2 > j1:
            out.append(("insert", "".join(b[j1:j2])))
    return out


def render_word_diff(ops: list[tuple[Op, str]]) -> str:
    """Runs as text: `[-removed-]{+added+}` (like `git diff --word-diff`)."""
    marks = {"delete": ("[-", "-]"), "insert": ("{+", "+}"), "equal": ("", "")}
    return "".join(f"{marks[op][0]}{text}{marks[op][1]}" for op, text in ops)


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value.strip("\n") else None  # multi-line text as a block, as people write it
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
