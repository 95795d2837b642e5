"""Traces → eval cases: what people found wrong in production becomes a regression suite.

    flywheel promote --queue daily-2026-12-01 --verdict fail --to evals/regressions.yaml

Each case carries the input, the retrieved context and the served answer (in `metadata`), the human
correction as `reference`, and checks derived from the labels: a `judge` whose criterion is the reviewer's
reason, `contains-all` of the numbers the correction states, `not-regex` of the numbers the served answer got
wrong (or `icontains-any` of the correction's key terms when it has no numbers), and `not-equals` of the
served answer. Near-duplicate inputs are collapsed (cosine of the project's embedder; token Jaccard for text
in a language it does not cover), PII is pseudonymised per case (flywheel.checks.pii.pseudonymize: the same
value is the same `<EMAIL_ADDRESS_1>` in the input, the reference and the checks; `keep` names the fields whose
own values stay, see flywheel.evals.promote_pii) and secrets always scrubbed, and every case keeps
`metadata.source_trace_id`; appending never repeats one. The file is written atomically, and only after
the suite it would become loads with the suite loader.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from flywheel.checks.pii import pseudonymize
from flywheel.config import Project
from flywheel.errors import UserError
from flywheel.evals.promote_pii import CASE_FIELDS, PiiTally, keep_fields
from flywheel.evals.promote_sources import Source
from flywheel.text import STOPWORDS, detect_language, tokenize

COSINE_DUPLICATE = 0.92  # same threshold family as the semantic cache
JACCARD_DUPLICATE = 0.8
# a number not glued to a Latin word or identifier (v2, abc123); Chinese, Japanese and Korean text writes numbers
# without spaces ("退款需要14天"), so a CJK character before one does not hide it
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_NUMBER = re.compile(rf"(?<![^\W{_CJK}])(?<!\.)\d+(?:[.,:]\d+)*%?")
_MAX_CONTEXT = 2000  # characters per retrieved passage kept in a case
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")  # masked PII (<EMAIL_ADDRESS_1>, <SECRET>): no key term


@dataclass
class PromoteResult:
    path: Path
    written: list[str] = field(default_factory=list)  # case ids added
    skipped_existing: list[str] = field(default_factory=list)  # source trace ids already in the suite
    collapsed: dict[str, list[str]] = field(default_factory=dict)  # kept trace id → near-duplicate trace ids
    created: bool = False
    pii: dict[str, Any] = field(default_factory=dict)  # PiiTally.to_dict() of the written cases
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "written": self.written, "skipped_existing": self.skipped_existing,
                "collapsed": self.collapsed, "created": self.created, "pii": self.pii, "warnings": self.warnings}


# ---------------------------------------------------------------- checks from labels


_CITATION = re.compile(r"\[\d+(?:\s*[,，]\s*\d+)*\]")


def numbers(text: str) -> list[str]:
    """The numbers an answer states, without its citation markers ([1], [2, 3])."""
    plain = _CITATION.sub(" ", text or "")
    return list(dict.fromkeys(m.group(0).rstrip(".,:") for m in _NUMBER.finditer(plain)))


def key_terms(text: str, avoid: str = "", limit: int = 3) -> list[str]:
    """Up to `limit` content words of `text` (CJK aware) that `avoid` does not contain, longest first."""
    seen = set(tokenize(avoid))
    terms = [t for t in dict.fromkeys(tokenize(_PLACEHOLDER.sub(" ", text))) if t not in seen and t not in STOPWORDS and not t.isdigit()]
    terms = [t for t in terms if len(t) >= 4 or not t.isascii()]
    return sorted(terms, key=len, reverse=True)[:limit]


def judge_criterion(reason: str | None, correction: str | None) -> str:
    reason = (reason or "").strip()
    correction = (correction or "").strip()
    if reason and correction:
        return (f"The answer does not have the problem a reviewer found in an earlier answer to this question "
                f"(\"{reason}\") and agrees with the corrected answer: {correction}")
    if reason:
        return f"The answer does not have the problem a reviewer found in an earlier answer to this question: {reason}"
    if correction:
        return f"The answer agrees with this corrected answer on every fact that matters: {correction}"
    return "The answer correctly and helpfully answers the question; an earlier answer to it was rejected."


UNREVIEWED_CRITERION = "The answer correctly and helpfully answers the question."


def derive_checks(
    reason: str | None, correction: str | None, served: str, judge: str | None = None, *, passed: bool = False,
    unreviewed: bool = False,
) -> list[Any]:
    """The checks a promoted case states. A failed answer: a judge from the reason, deterministic checks where
    the correction allows, and that the served answer is not given again. A passed answer (a case that must
    keep passing): the case's reference (the correction, else the served answer) is what the answer must
    agree with, and the numbers it states must stay. An unreviewed answer (a trace promoted for coverage, e.g.
    from a `flywheel skew` gap, that nobody complained about): only a plain judge, since nothing says the
    served answer was wrong (`not-equals` would fail the app for giving a good answer again) or right."""
    if unreviewed:
        return [{"judge": {"criterion": UNREVIEWED_CRITERION, "model": judge} if judge else UNREVIEWED_CRITERION}]
    if passed:
        reference = correction or served
        why = f" (a reviewer passed it: {reason})" if reason else ""
        criterion = f"The answer agrees on every fact that matters with this answer{why}: {reference}"
        checks: list[Any] = [{"judge": {"criterion": criterion, "model": judge} if judge else criterion}]
        if numbers(reference):
            checks.append({"contains-all": numbers(reference)[:5]})
        return checks
    criterion = judge_criterion(reason, correction)
    checks = [{"judge": {"criterion": criterion, "model": judge} if judge else criterion}]
    if correction:
        right = numbers(correction)
        if right:
            checks.append({"contains-all": right[:5]})
            for wrong in [n for n in numbers(served) if n not in right][:3]:
                checks.append({"not-regex": rf"(?<![\d.]){re.escape(wrong)}(?!\d)"})
        else:
            terms = key_terms(correction, avoid=served)
            if terms:
                checks.append({"icontains-any": terms})
    if served.strip():
        checks.append({"not-equals": served.strip()})
    return checks


# ---------------------------------------------------------------- near duplicates


def _jaccard(a: str, b: str) -> float:
    x, y = set(tokenize(a)), set(tokenize(b))
    if not x and not y:
        return 1.0 if a.strip() == b.strip() else 0.0
    return len(x & y) / len(x | y)


def collapse(
    sources: Sequence[Source], existing_inputs: Sequence[str] = (), embedder: Any = None
) -> tuple[list[Source], dict[str, list[str]], list[str]]:
    """(kept sources, kept trace id → collapsed trace ids, trace ids that duplicate an existing case)."""
    texts = [*existing_inputs, *(s.input for s in sources)]
    covered = [embedder is not None and embedder.thresholds_hold(detect_language(t)) for t in texts]
    vectors = None
    if embedder is not None and any(covered):
        vectors = embedder.embed([t for t, c in zip(texts, covered, strict=True) if c])
    index: dict[int, int] = {}
    for i, c in enumerate(covered):
        if c:
            index[i] = len(index)

    def similar(i: int, j: int) -> bool:
        if vectors is not None and i in index and j in index:
            return float(vectors[index[i]] @ vectors[index[j]]) >= COSINE_DUPLICATE
        return _jaccard(texts[i], texts[j]) >= JACCARD_DUPLICATE

    offset = len(existing_inputs)
    kept: list[int] = []
    groups: dict[str, list[str]] = {}
    dup_existing: list[str] = []
    for n, src in enumerate(sources):
        i = offset + n
        if any(similar(i, j) for j in range(offset)):
            dup_existing.append(src.trace_id)
            continue
        twin = next((k for k in kept if similar(i, k)), None)
        if twin is None:
            kept.append(i)
            groups[src.trace_id] = []
        else:
            groups[sources[twin - offset].trace_id].append(src.trace_id)
    return [sources[k - offset] for k in kept], {k: v for k, v in groups.items() if v}, dup_existing


# ---------------------------------------------------------------- cases


def mask_text(text: str | None) -> str | None:
    """One text masked on its own (numbered placeholders, secrets scrubbed): the key near-duplicates and the
    train / holdout split are judged on."""
    if text is None:
        return None
    return pseudonymize({"text": [text]}).text("text")


def build_case(src: Source, judge: str | None, taken: set[str], keep: frozenset[str] = frozenset(),
               tally: PiiTally | None = None) -> dict[str, Any]:
    # the earlier turns of a conversation are input too: one placeholder per value across every turn
    masked = pseudonymize({"input": [*src.history, src.input], "context": list(src.context),
                           "served_answer": [src.output], "reference": [src.correction], "reason": [src.reason]},
                          keep)
    if tally is not None:
        tally.add(masked, correction=bool(src.correction))
    *earlier, question = [t or "" for t in masked.fields["input"]]
    served = masked.text("served_answer") or ""
    correction = masked.text("reference")
    reason = masked.text("reason")
    case_id = f"trace-{src.trace_id[:12]}"
    n = 2
    while case_id in taken:
        case_id, n = f"trace-{src.trace_id[:12]}-{n}", n + 1
    taken.add(case_id)
    case: dict[str, Any] = {"id": case_id, "description": src.description}
    last: dict[str, Any] = case  # a single-turn case, or the conversation's last turn (checks apply to it alone)
    if earlier:  # a later turn of a conversation: replay the user's earlier messages first, in one session
        last = {"input": question}
        case["turns"] = [*({"input": t} for t in earlier), last]
    else:
        case["vars"] = {"question": question}
    if correction or (src.verdict == "pass" and served):
        last["reference"] = correction or served
    last["checks"] = derive_checks(reason, correction, served, judge, passed=src.verdict == "pass",
                                   unreviewed=src.verdict == "unreviewed")
    meta: dict[str, Any] = {"source_trace_id": src.trace_id, "served_answer": served}
    if src.context:
        meta["context"] = [(c or "")[:_MAX_CONTEXT] for c in masked.fields["context"]]
    if reason:
        meta["reason"] = reason
    meta.update({k: v for k, v in src.extra.items() if v is not None})
    case["metadata"] = meta
    return case


# ---------------------------------------------------------------- the suite file


def _dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110, default_flow_style=False)


def _existing(path: Path) -> tuple[str, dict[str, Any] | None]:
    if not path.exists():
        return "", None
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"cannot read {path}: {exc}", where=f"{path}:1", hint="fix the YAML or choose another --to") \
            from None
    if not isinstance(data, dict) or not isinstance(data.get("cases"), list):
        raise UserError(f"{path} is not a suite with a `cases:` list", where=f"{path}:1",
                        hint="promote into a suite whose cases are written inline, or a new file")
    return text, data


_CASES_KEY = re.compile(r"^cases:[ \t]*(?P<empty>\[[ \t]*\])?[ \t]*(?P<comment>#.*)?$", re.MULTILINE)
_TOP_LEVEL = re.compile(r"^(?=[^\s#-])", re.MULTILINE)  # a line that starts a top-level key (not a list item)
_LEADING_NOTES = re.compile(r"(?:^[ \t]*(?:#.*)?\n)+\Z", re.MULTILINE)  # blank / comment lines before it


def _append(text: str, data: dict[str, Any], cases: list[dict[str, Any]]) -> str:
    """The file with `cases` added at the end of its `cases:` block as text, so comments and layout everywhere
    else are kept (also when other keys follow the block, or it is `cases: []`); the whole suite written again
    only when that text does not load back as the intended suite (a flow-style list)."""
    wanted = {**data, "cases": [*data["cases"], *cases]}
    key = _CASES_KEY.search(text)
    if key is not None:
        head = text[:key.start()] + ("cases:" + (f"  {key['comment']}" if key["comment"] else "")
                                      if key["empty"] else key.group(0))
        rest = text[key.end():]
        following = _TOP_LEVEL.search(rest)
        end = following.start() if following else len(rest)
        notes = _LEADING_NOTES.search(rest[:end])  # comments above the next key belong to that key
        if notes is not None and following is not None:
            end = notes.start()
        body = rest[:end]
        items = re.findall(r"^( *)- ", body, re.MULTILINE)
        indent = items[0] if items else "  "
        block = "".join(indent + line + "\n" for line in _dump(cases).splitlines())
        body = body.rstrip("\n")
        candidate = head + body + "\n" + block + rest[end:]
        try:
            if yaml.safe_load(candidate) == wanted:
                return candidate
        except yaml.YAMLError:
            pass
    return _dump(wanted)


def write_suite(
    project: Project,
    path: Path,
    sources: Sequence[Source],
    *,
    target: str | None = None,
    judge: str | None = None,
    embedder: Any = None,
    name: str | None = None,
    keep: str | Iterable[str] | None = None,
) -> PromoteResult:
    """Add a case for every new source to the suite at `path` (created when missing); atomic. `keep`: the case
    fields whose own personal data stays (see flywheel.evals.promote_pii); None: the project's
    `review.keep_pii`."""
    if keep is None:
        kept_fields = keep_fields(project.config.review.keep_pii, CASE_FIELDS, option="review.keep_pii",
                           where=str(project.root / "flywheel.yaml"))
    else:
        kept_fields = keep_fields(keep, CASE_FIELDS)
    tally = PiiTally(CASE_FIELDS, kept_fields)
    text, data = _existing(path)
    result = PromoteResult(path=path, created=data is None)
    old_cases = data["cases"] if data else []
    known = {str((c.get("metadata") or {}).get("source_trace_id")) for c in old_cases if isinstance(c, dict)}
    fresh = [s for s in sources if s.trace_id not in known]
    result.skipped_existing = [s.trace_id for s in sources if s.trace_id in known]
    old_inputs = [_conversation(c) for c in old_cases if isinstance(c, dict)]
    # near-duplicates are judged on the whole conversation: two sessions that end in "那多久？" ask different things
    masked = [replace(s, input=mask_text("\n".join([*s.history, s.input])) or "") for s in fresh]
    survivors, result.collapsed, dup = collapse(masked, [i for i in old_inputs if i], embedder)
    result.skipped_existing += dup
    taken = {str(c.get("id")) for c in old_cases if isinstance(c, dict)}
    by_id = {s.trace_id: s for s in fresh}
    cases = [build_case(by_id[s.trace_id], judge, taken, kept_fields, tally) for s in survivors]
    for case in cases:
        dups = result.collapsed.get(case["metadata"]["source_trace_id"])
        if dups:
            case["metadata"]["duplicates"] = dups
    result.written = [c["id"] for c in cases]
    result.pii = tally.to_dict()
    result.warnings = [w for w in [tally.warning()] if w]
    if not cases:
        return result
    if data is None:
        suite: dict[str, Any] = {
            "name": name or path.stem,
            "description": "Cases promoted from reviewed production traces (flywheel promote).",
            "target": target or _default_target(project, sources),
        }
        if judge:
            suite["defaults"] = {"judge": judge}
        suite["cases"] = cases
        new_text = _dump(suite)
    else:
        new_text = _append(text, data, cases)
    _write_atomic(project, path, new_text)
    return result


def _conversation(case: dict[str, Any]) -> str:
    """An existing case's input as `collapse` compares it: its question, or its turns' inputs one per line."""
    turns = case.get("turns")
    if isinstance(turns, list) and turns:
        return "\n".join(str(t.get("input", "")) for t in turns if isinstance(t, dict))
    return str((case.get("vars") or {}).get("question", ""))


def _default_target(project: Project, sources: Sequence[Source]) -> str:
    apps = sorted({s.app for s in sources if s.app})
    if len(apps) == 1 and apps[0] in project.config.apps:
        return f"app:{apps[0]}"
    raise UserError(
        "cannot tell which app the new suite should run" + (f" (traces of {', '.join(apps)})" if apps else
                                                            " (the traces belong to no app)"),
        hint="pass --target app:NAME (an app in flywheel.yaml) or model:ALIAS (traces served through "
             "/v1/chat/completions: the alias the client named as `model`)",
    )


def _write_atomic(project: Project, path: Path, text: str) -> None:
    """Write next to `path`, load it with the suite loader, then rename over `path` (all or nothing)."""
    from flywheel.evals.suite import load_suite

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        load_suite(tmp, project)
        os.replace(tmp, path)
    except UserError as exc:
        Path(tmp).unlink(missing_ok=True)
        if not (exc.where or "").startswith(tmp):  # the temporary name means nothing to the user
            raise
        raise UserError(f"{exc.message} (in the suite for {path}; nothing was written)", hint=exc.hint) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
