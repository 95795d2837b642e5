"""Reading a verdict from what judge models really write.

The rules, in order (`read_verdict`):

1. A reply cut off by the token limit (finish_reason `length` / `max_tokens`) or empty has no verdict.
2. Reasoning blocks (`<think>…</think>`, `<thinking>`, `<reasoning>`, also an unclosed one and the tail of one
   whose opening tag was in the prompt, as R1-style models served by vLLM / Ollama write them) are dropped
   first: a draft verdict inside them never counts. Nothing left after them is no verdict.
3. The rest is normalised: full-width forms (｛“passed”：true｝) become ASCII (NFKC) and curly quotes straight.
4. Verdicts are found, and the LAST one counts:
   - a JSON object anywhere (plain, in ``` fences, after prose), read leniently (single quotes, trailing
     commas, Python True/False/None, bare keys, raw newlines in strings), at any depth, from a verdict key
     (`verdict`, `winner`, `decision`, `judgment`, `result`, `结论`, `判定` …) or a yes/no key (`passed`,
     `pass`, `meets_criterion`, `是否通过` …) holding true/false;
   - a marker followed by a label: `Verdict: PASS`, `**Final verdict** — fail`, `"verdict": 'FAIL'` in JSON
     too broken to parse, `结论：不合格`, `判定为通过`; not an echo of the choices (`Verdict: PASS or FAIL`);
   - `[[A]]`.
5. Failing those: the whole answer is one label (`PASS`, `Yes.`, `**不通过**`), or its last line starts with
   a strong label (the verdict words themselves, e.g. `PASS`/`FAIL`/`A`/`B`/`tie`, or a CJK one) followed
   by punctuation (`FAIL: no source given`), or ends with one after a colon or dash.
   A label inside a sentence (`the answer is correct, but…`, `it does not pass`) is no verdict.

Labels match whole words in any case; a one-letter label (A, B) only in upper case; a CJK label (通过) not
after a negation (不, 未, 没, 非), so `不通过` is never read as `通过`. A reply without a verdict says why
(`problem`): empty, truncated, reasoning-only, score (`4/5`, `8 out of 10`: a binary judge has no
threshold), refusal, or none.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from flywheel.prompts.reasoning import split_reasoning

REASONING_TAGS = ("think", "thinking", "reasoning")
TRUNCATED = ("length", "max_tokens", "model_length")
VERDICT_KEYS = ("verdict", "final_verdict", "winner", "decision", "judgment", "judgement", "label", "result",
                "outcome", "结论", "判定", "判决", "裁决", "评判", "结果")
YES_KEYS = ("passed", "pass", "is_pass", "meets_criterion", "meets_criteria", "meets", "criterion_met",
            "是否通过", "通过", "是否符合", "是否合格")
REASON_KEYS = ("reasoning", "reason", "rationale", "explanation", "analysis", "justification", "理由", "原因",
               "分析", "解释")
_MARKERS = (r"(?:final[ \t]+)?(?:verdict|winner|decision|judge?ment)|final[ \t]+answer|"
            r"结论|判定|判决|裁决|评判|评定|结果|判断")
_NEGATORS = "不未没非无否"
_MAX_MISSES = 32
# the second choice of an echoed instruction: "… `Verdict: PASS` or `Verdict: FAIL`"
_ECHO_BEFORE = re.compile(r"(?:\bor|/|\||或|还是)[\s\"'`*_]*\Z", re.IGNORECASE)
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‟": '"', "″": '"', "「": '"', "」": '"',
                         "『": '"', "』": '"', "‘": "'", "’": "'", "‚": "'", "‛": "'", "′": "'"})
_MARKUP = " \t*_`#>~\"'.,;:!?。，；：！？()[]（）【】<>-–—|✅❌✔✓✗✘☑️"
_SCORE = re.compile(r"\b\d+(?:\.\d+)?\s*(?:/|out\s+of|分\s*/)\s*\d+\b|\bscore\W{0,4}\d|评分|得分|打分",
                    re.IGNORECASE)
_REFUSAL = re.compile(r"\b(?:I\s+(?:can(?:no|')?t|am\s+(?:not\s+able|unable)|won't|will\s+not|must\s+decline)|"
                      r"I'm\s+(?:sorry|unable|not\s+able)|as\s+an\s+AI)\b|无法|不能评|抱歉", re.IGNORECASE)


@dataclass
class Reading:
    """What a judge reply says: the verdict (None when it gives none), why there is none, and its reasoning."""

    verdict: str | None
    problem: str | None = None  # empty | truncated | reasoning-only | score | refusal | none
    reasoning: str = ""

    def why(self) -> str:
        return {
            "empty": "the reply was empty",
            "truncated": "the reply was cut off by the token limit before its verdict",
            "reasoning-only": "the reply held only a reasoning block (<think>…), no answer after it",
            "score": "the reply gave a score, not a verdict",
            "refusal": "the judge declined to judge",
        }.get(self.problem or "", "no verdict found")


def normalise(text: str) -> str:
    """Full-width forms as ASCII (NFKC) and curly quotes straight: what verdicts are looked for in."""
    return unicodedata.normalize("NFKC", text).translate(_QUOTES)


def answer_part(text: str) -> tuple[str, bool]:
    """(the reply without its reasoning blocks, whether it had any)."""
    had = False
    for tag in REASONING_TAGS:
        if f"<{tag}" in text.lower() or f"</{tag}" in text.lower():
            text, _ = split_reasoning(text, tag)
            had = True
    return text.strip(), had


def read_verdict(text: str | None, labels: dict[str, str], *, finish_reason: str | None = None) -> Reading:
    """The FINAL verdict in a judge's reply, as one of `labels`' values (see the module's rules)."""
    if not text or not text.strip():
        return Reading(None, "empty")
    answer, had_reasoning = answer_part(text)
    if finish_reason in TRUNCATED:
        return Reading(None, "truncated", reasoning_of(text))
    if not answer:
        return Reading(None, "reasoning-only" if had_reasoning else "empty")
    norm = normalise(answer)
    verdict = _find(norm, labels)
    if verdict is None:
        problem = "score" if _SCORE.search(norm) else "refusal" if _REFUSAL.search(norm) else "none"
        return Reading(None, problem, _reasoning(answer, norm))
    return Reading(verdict, None, _reasoning(answer, norm))


def parse_verdict(text: str, labels: dict[str, str]) -> str | None:
    """`read_verdict(text, labels).verdict`: the final verdict, or None."""
    return read_verdict(text, labels).verdict


# ---------------------------------------------------------------- labels


def _label_rx(labels: dict[str, str], strong_only: bool = False) -> str:
    alts = []
    for word in sorted(labels, key=len, reverse=True):
        if strong_only and not _strong(word, labels):
            continue
        if not word.isascii():
            alts.append(f"(?<![{_NEGATORS}]){re.escape(word)}")
        elif len(word) == 1:
            alts.append(rf"(?<![\w]){re.escape(word.upper())}(?![\w])")
        else:
            alts.append(rf"(?<![\w])(?i:{re.escape(word)})(?![\w])")
    return f"({'|'.join(alts)})" if alts else "(?!)"


def _strong(word: str, labels: dict[str, str]) -> bool:
    """The verdict words themselves (pass, A, tie) and CJK ones; yes / no / correct … only next to a marker."""
    return word.lower() == labels[word].lower() or not word.isascii()


def _value(value: Any, labels: dict[str, str], *, yes_key: bool = False) -> str | None:
    if isinstance(value, bool) or value is None:
        word = {True: "true", False: "false", None: ""}[value]
        return labels.get(word) if yes_key or word else None
    if not isinstance(value, str | int | float):
        return None
    cleaned = str(value).strip(_MARKUP).strip()
    if cleaned.lower() in labels:
        return labels[cleaned.lower()]
    m = re.match(_label_rx(labels) + r"(?:$|[\s:：,，.。;；!！(（\-–—])", cleaned)
    return labels[m.group(1).lower()] if m else None


# ---------------------------------------------------------------- finding verdicts


def _find(text: str, labels: dict[str, str]) -> str | None:
    found: list[tuple[int, str]] = []
    spans: list[tuple[int, int]] = []
    for start, end in _objects(text):
        obj = loads_lenient(text[start:end])
        if isinstance(obj, dict):
            spans.append((start, end))
            verdict = _obj_verdict(obj, labels)
            if verdict is not None:
                found.append((end, verdict))
    label = _label_rx(labels)
    echo = r"(?![\"'`*_]*\s*(?:/|\||\bor\b|或|还是)\s*\S)"
    gap = r"(?:[^\w\n]|\bis\b|\bwas\b|为|是){0,12}?"
    for rx in (rf"(?i:{_MARKERS})[\"']?{gap}{label}{echo}", rf"\[\[\s*{label}\s*\]\]"):
        for m in re.finditer(rx, text):
            if not any(s <= m.start() < e for s, e in spans) and not _ECHO_BEFORE.search(text[:m.start()]):
                found.append((m.end(), labels[m.group(1).lower()]))
    for m in re.finditer(rf"[\"']?(?:{'|'.join(map(re.escape, YES_KEYS))})[\"']?\s*:\s*[\"']?(true|false)\b",
                         text, re.IGNORECASE):
        verdict = labels.get(m.group(1).lower())
        if verdict is not None and not any(s <= m.start() < e for s, e in spans):
            found.append((m.end(), verdict))
    if found:
        return max(found)[1]
    whole = text.strip(_MARKUP).strip()
    if whole.lower() in labels and (len(whole) > 1 or whole.isupper()):
        return labels[whole.lower()]
    lines = [ln.strip(_MARKUP.replace(":", "").replace("-", "")).strip() for ln in text.splitlines()]
    last = next((ln for ln in reversed(lines) if ln), "")
    strong = _label_rx(labels, strong_only=True)
    hit = re.match(rf"{strong}{echo}(?:$|\s*[:：,，.。;；!！(（\-–—])", last)
    if hit is None and not re.search(rf"(?i:{_MARKERS})", last):  # a marker line was read (or is an echo)
        hit = re.search(rf"[:：\-–—]\s*{strong}\W*$", last)
    return labels[hit.group(1).lower()] if hit else None


def _obj_verdict(obj: dict[str, Any], labels: dict[str, str], depth: int = 0) -> str | None:
    keys = {_key(k): v for k, v in obj.items()}
    for key in VERDICT_KEYS:
        if key in keys and (verdict := _value(keys[key], labels)) is not None:
            return verdict
    for key in YES_KEYS:
        if key in keys and (verdict := _value(keys[key], labels, yes_key=True)) is not None:
            return verdict
    if depth < 3:
        for value in obj.values():
            if isinstance(value, dict) and (verdict := _obj_verdict(value, labels, depth + 1)) is not None:
                return verdict
    return None


def _key(key: Any) -> str:
    return re.sub(r"[\s\-]+", "_", str(key).strip().lower())


def _objects(text: str) -> list[tuple[int, int]]:
    """(start, end) of every top-level balanced {…} in `text`, braces inside quoted strings ignored."""
    out: list[tuple[int, int]] = []
    i, misses = text.find("{"), 0
    while i >= 0 and misses < _MAX_MISSES:  # unbalanced braces (quoted code) cost a scan each: bounded
        end = _match(text, i)
        if end is None:
            misses += 1
            i = text.find("{", i + 1)
            continue
        out.append((i, end))
        i = text.find("{", end)
    return out


def _match(text: str, start: int) -> int | None:
    depth, quote, i = 0, "", start
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote or (c == "\n" and quote == "'"):
                quote = ""
        elif c == '"' or (c == "'" and not (text[i - 1:i].isalnum() and text[i + 1:i + 2].isalnum())):
            quote = c
        elif c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def loads_lenient(text: str) -> Any:
    """A JSON value as models write it: strict JSON, else with single quotes, trailing commas, Python
    True/False/None and bare keys repaired; None when it still is not JSON."""
    for candidate in (text, _repair(text)):
        try:
            return json.loads(candidate, strict=False)
        except ValueError:
            continue
    return None


def _repair(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j, buf = i + 1, []
            while j < n and text[j] != c:
                if text[j] == "\\" and j + 1 < n:
                    buf.append(text[j:j + 2] if text[j + 1] != "'" else "'")
                    j += 2
                    continue
                buf.append('\\"' if text[j] == '"' else text[j])
                j += 1
            out.append('"' + "".join(buf) + '"')
            i = j + 1
        elif c.isalpha() or c == "_":
            j = i
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            word = text[i:j]
            literal = {"True": "true", "False": "false", "None": "null"}.get(word, word)
            rest = text[j:].lstrip()
            out.append(f'"{word}"' if rest.startswith(":") and word not in ("true", "false", "null") else literal)
            i = j
        else:
            out.append(c)
            i += 1
    return re.sub(r",(\s*[}\]])", r"\1", "".join(out))


# ---------------------------------------------------------------- reasoning


def _reasoning(answer: str, norm: str) -> str:
    for start, end in reversed(_objects(norm)):
        obj = loads_lenient(answer[start:end]) if answer[start:end] == norm[start:end] else None
        obj = obj if isinstance(obj, dict) else loads_lenient(norm[start:end])
        if isinstance(obj, dict):
            keys = {_key(k): v for k, v in obj.items()}
            for key in REASON_KEYS:
                if isinstance(keys.get(key), str) and keys[key].strip():
                    return keys[key].strip()
    names = "|".join(map(re.escape, REASON_KEYS))
    m = re.search(rf"[\"']?(?:{names})[\"']?\s*:\s*[\"'](.*?)[\"']\s*(?:,\s*[\"']?\w+[\"']?\s*:|}})", norm, re.DOTALL)
    return m.group(1).strip() if m else _prose_reasoning(answer)


def _prose_reasoning(text: str) -> str:
    lines = text.strip().splitlines()
    marker = rf"(?i:{_MARKERS})|\[\["
    if lines and re.search(marker, lines[-1]):
        # keep reasoning written on the verdict line itself ("… so it passes. Verdict: PASS")
        before = re.split(marker, lines[-1], maxsplit=1)[0].strip(" *_#>-")
        lines = [*lines[:-1], before] if before else lines[:-1]
    reason = "\n".join(lines).strip()
    return re.sub(r"^\W*(?:reasoning|理由)\W*", "", reason, flags=re.IGNORECASE)


def reasoning_of(text: str) -> str:
    """The judge's reasoning: the structured `reasoning` (or `reason` …), else its answer without the final
    verdict line; a reply that is only a reasoning block gives that block."""
    answer, _ = answer_part(text)
    if not answer:
        answer = split_reasoning(text, "think")[1] or text
    return _reasoning(answer, normalise(answer))
