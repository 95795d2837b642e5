"""`grounding`: deterministic verification of an answer's citations and quotations against its sources.

    - grounding: {}                          # every [n] must exist; every quote must occur in its source
    - grounding: {require_citations: true}   # …and an answer without any [n] fails
    - grounding: {min_score: 0.8}            # pass when at least 80 % of citations and quotes verify

`ctx.sources` holds the texts shown to the model, in [n] order (source 1 first). Verified items:

- each distinct citation `[n]` (also `[1, 2]`, `[1][2]`): n must be between 1 and the number of sources;
- each quotation in "…", “…”, 「…」 or 『…』 of at least three words (or five CJK characters): it must
  occur in the source(s) cited right after it in the same sentence, or in any source when it cites none.
  Comparison ignores case and whitespace differences (also line wrapping inside Chinese text); an
  ellipsis inside a quote (… or ...) matches any text in between, in order.

score = verified items / all items. An answer with nothing to verify passes (score 1) unless
`require_citations` is set. The reason lists every failure.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from flywheel.checks.base import Check, CheckContext, register
from flywheel.text import sentence_spans
from flywheel.types import CheckResult

_CITE = re.compile(r"\[(\d+(?:\s*[,，、]\s*\d+)*)\]")
_QUOTES = [re.compile(p) for p in (r'"([^"\n]+)"', r"“([^”]+)”", r"「([^」]+)」", r"『([^』]+)』")]
# Citations that belong to a quote: after it, before the sentence ends.
_RIGHT_AFTER = re.compile(r"\s*[.,;:。，；：]?\s*((?:\[\d+(?:\s*[,，、]\s*\d+)*\]\s*)+)")
_ELLIPSIS = re.compile(r"\s*(?:…|\.\.\.)\s*")
_CJK = r"\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SPACE_NEAR_CJK = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")
_EDGE_PUNCT = " \t\n.,;:!?。，；：！？、"
_HAN = re.compile(rf"[{_CJK}]")


def normalise(text: str) -> str:
    """Casefold, NFKC, straight apostrophes, single spaces, no spaces next to CJK characters."""
    text = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'").casefold()
    text = " ".join(text.split())
    return _SPACE_NEAR_CJK.sub("", text)


def citations_in(text: str) -> list[tuple[int, int, int]]:
    """(n, start, end) for every cited number, in order."""
    out = []
    for m in _CITE.finditer(text):
        for part in re.split(r"\s*[,，、]\s*", m.group(1)):
            out.append((int(part), m.start(), m.end()))
    return out


@dataclass
class Quote:
    text: str
    start: int
    end: int


def quotes_in(text: str) -> list[Quote]:
    """Quotations long enough to be quotations (not a quoted term like "version")."""
    found: list[Quote] = []
    for pattern in _QUOTES:
        for m in pattern.finditer(text):
            body = m.group(1).strip()
            if len(body.split()) >= 3 or len(_HAN.findall(body)) >= 5:
                found.append(Quote(body, m.start(), m.end()))
    found.sort(key=lambda q: q.start)
    return found


def _cited_after(text: str, quote: Quote, cites: list[tuple[int, int, int]]) -> list[int]:
    """Numbers cited right after the quote, else later in the quote's sentence."""
    right_after = _RIGHT_AFTER.match(text, quote.end)
    if right_after:
        return [n for n, start, _ in cites if right_after.start(1) <= start < right_after.end(1)]
    rest = sentence_spans(text, quote.end)  # the quote's sentence runs to the end of the first of these
    # A citation right after the closing sentence mark ("…." [2]) still belongs to the quote.
    limit = len(text) if not rest else rest[0][1] + 7
    return [n for n, start, _ in cites if quote.end <= start <= limit]


def occurs(quote: str, source: str) -> bool:
    """The quote's parts (split at ellipses) occur in the source, in order."""
    haystack = normalise(source)
    pos = 0
    for part in _ELLIPSIS.split(quote):
        needle = normalise(part).strip(_EDGE_PUNCT)
        if not needle:
            continue
        found = haystack.find(needle, pos)
        if found < 0:
            return False
        pos = found + len(needle)
    return True


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


@register
class Grounding(Check):
    """grounding: {require_citations: bool = false, min_score: float = 1.0} — cited [n] exist, quotes occur in them"""

    name = "grounding"
    scope = "answer"  # a quote may run over sentences; the score is over the whole answer

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        options = {} if arg in (None, True) else arg
        if not isinstance(options, dict):
            raise TypeError("grounding takes a mapping like {require_citations: true} or nothing")
        unknown = set(options) - {"require_citations", "min_score"}
        if unknown:
            raise ValueError(f"unknown option(s) {', '.join(sorted(unknown))}; use require_citations, min_score")
        self.require_citations = bool(options.get("require_citations", False))
        self.min_score = float(options.get("min_score", 1.0))
        if not 0.0 <= self.min_score <= 1.0:
            raise ValueError("min_score must be between 0 and 1")

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        sources = list(ctx.sources)
        cites = citations_in(output)
        quotes = quotes_in(output)
        failures: list[str] = []
        cited = sorted({n for n, _, _ in cites})
        bad_cites = [n for n in cited if not 1 <= n <= len(sources)]
        for n in bad_cites:
            failures.append(f"[{n}] cites a source that was not in the context ({len(sources)} sources)")
        quote_details = []
        for q in quotes:
            targets = [n for n in _cited_after(output, q, cites) if 1 <= n <= len(sources)]
            pool = targets or list(range(1, len(sources) + 1))
            found_in = [n for n in pool if occurs(q.text, sources[n - 1])]
            quote_details.append({"quote": q.text, "cited": targets, "found_in": found_in})
            if not found_in:
                where = "in " + ", ".join(f"[{n}]" for n in targets) if targets else "in any source"
                failures.append(f"quote “{_short(q.text)}” does not occur {where}")
        items = len(cited) + len(quotes)
        details = {"citations": cited, "quotes": quote_details, "failures": failures, "sources": len(sources)}
        if items == 0:
            if self.require_citations:
                return CheckResult(passed=False, score=0.0, reason="the answer cites no source", details=details)
            return CheckResult(passed=True, score=1.0, reason="no citations or quotations to verify",
                               details=details)
        score = (items - len(failures)) / items
        passed = score >= self.min_score and not (self.require_citations and not cited)
        if failures:
            reason = f"{items - len(failures)}/{items} verified; " + "; ".join(failures)
        elif self.require_citations and not cited:
            reason = "quotations verified but the answer cites no source"
        else:
            reason = f"all {len(cited)} citation(s) and {len(quotes)} quotation(s) verified"
        return CheckResult(passed=passed, score=score, reason=reason, details=details)
