"""`extractive`: the offline default model. It answers by quoting the source sentences and list items that
best match the question, each followed by its [n] citation — deterministic, no network, and never says more
than the sources. Every quote is a verbatim slice of its source (line breaks inside it kept).

Contract (what a caller gives it):

- **Sources** are read from the prompt itself, exactly as a real model would see them: every
  `<source id="n" …>text</source>` block (the XML style) or every Markdown section whose heading starts
  with `[n]` (`### [n] name location`, the Markdown style), in any message. A Markdown section runs to the
  next `[n]` heading or to the `Question:` / `问题：` line. Both are the styles the packaged docs_qa prompt
  renders, so any prompt built on `Prompt.render(sources=…)` works.
- **The question** is `request.metadata["question"]` when the caller sets it (the docs-QA app does);
  otherwise the text after the last `Question:` / `问题：` label, otherwise the last user message with the
  source blocks removed.

How it picks (see docs/retrieval.md, "The extractive model"):

- A source is read as units: sentences of paragraphs, list items, table rows. Headings, heading-like lines
  (a short line without sentence punctuation, `**3.3 …**`) and lead-ins ("以下是一些建议：", a sentence ending in
  a colon right before a list) are not quoted themselves: they are the *context* of the units under them, so
  "如何选择基础模型？" quotes the items under the heading "如何选择基础模型", not the heading. A sentence's context
  also holds the sentence before it ("它的好处是…" is about what that one names). Code is never quoted.
- A unit's score is the IDF-weighted share of the question's terms it covers (its own words count fully, its
  context's words half; a Chinese question word written inside a longer source word counts too, and so do
  characters jieba cut one by one, 年 假, where a unit writes them together, 年假, never against one). It must
  reach `params.min_coverage` (default 0.34) with at least two question terms. The question's words in the
  unit's heading path (the source's location, then the headings inside it) add `TOPIC` times their share: a
  unit in a section about the question beats one that mentions its words in passing elsewhere.
  Examples are not answers: a unit holding the whole question (a page listing example questions) is not
  quoted, and quoted example questions, Chinese inside inline code, call arguments in inline code, link
  targets and URLs match nothing; a question's name matches only a whole word (extractive_match.py).
  A unit in another script than the question (code and links aside) is not quoted; when every source is, it
  answers the cross-language message (flywheel.prompts.cross_language).
  Chinese frame words (在…的情况下, 没有, 以后) and the noun an interrogative asks for (什么地方: "where") are
  not terms, as English function words are not (extractive_match.py).
  The quotes are the best units (up to `params.max_quotes`, default 3), each at least `RELATIVE_FLOOR` (0.6)
  of the best one's relevance (the same-language bonus only ranks); when the best is a list item, its
  sibling items that also qualify are quoted with it, in order (up to 5).
- It declines (in the question's language) when no unit qualifies, or when the question names something —
  a Latin-script word in a Chinese question, a capitalised word (not the first) or a number in an English
  one — that appears in none of the sources: names have no synonyms, so the sources are about something else.
  An all-capital one (US, HR, SLA) may be spelled out instead: words whose initials spell it ("United States";
  capitalised words for two letters) match it, there and in the unit's score.
- **Unseen identifiers** (`request.metadata["unseen_identifiers"]`, which the docs-QA app sets from the
  retriever): the question's identifiers that no document of the corpus contains (order 12345 in "退款规则
  12345？") are not terms of the question — documentation describes the kind of thing, not the user's own
  one — unless nothing else is left. An identifier the corpus has but no source shows still counts, and
  still declines.
- **The asker's own details** (flywheel.checks.pii.asked_part): an e-mail address, a phone number or other
  personal data a default `pii` guard masks, and the placeholder a `redact` guard put there
  (`<EMAIL_ADDRESS_1_qhzvk>`), are not terms of the question, nor is a sentence that carries them when others are
  left ("… Mail me at ann@example.com"); within the asking sentence, the words that ask to be reached
  (`CONTACT_WORDS`: mail, call, 联系, 电话) count where a unit has them, never against one.

English words are stemmed with flywheel.text's `stem` (Snowball English, the keyword index's stems; a final s
ignored, see `_match_form`) and Chinese text is segmented into words with jieba. Token usage is estimated (~4 characters per token).
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection
from dataclasses import dataclass

from flywheel.checks.pii import asked_part
from flywheel.config import ModelAlias
from flywheel.gateway.providers.base import BaseProvider, ProviderResponse, estimate_tokens
from flywheel.gateway.providers.extractive_match import (
    CONTACT_WORDS,
    HAN_RUN,
    INLINE_CODE,
    acronyms,
    asked_kinds,
    content,
    echo_key,
    found,
    joined_characters,
    names,
    pairs,
    prose,
    prose_script,
    question_scripts,
    script,
    spells_out,
    terms,
    whole_words,
    words,
)
from flywheel.prompts.cross_language import cross_language_message
from flywheel.prompts.render import language_of
from flywheel.text import detect_language, sentence_spans
from flywheel.types import ChatRequest, Usage

# At line starts, as the prompt renders them: a passage that mentions `<source id="1">…</source>` inline (the
# docs do) is text, not a source block.
_XML_SOURCE = re.compile(r"^[ \t]*<source\b([^>\n]*)>(.*?)^[ \t]*</source>", re.DOTALL | re.MULTILINE)
_XML_ID = re.compile(r"\bid\s*=\s*[\"']?(\d+)")
_XML_LOCATION = re.compile(r"\blocation\s*=\s*\"([^\"]*)\"")
_LINES_SUFFIX = re.compile(r",?\s*lines? \d+(?:–\d+)?$")
_MD_HEADING = re.compile(r"^\s{0,3}#{1,6}\s*\[(\d+)\]")
_QUESTION_LABEL = re.compile(r"^\s*(?:question|问题|問題)\s*[:：]\s*", re.IGNORECASE | re.MULTILINE)
_LIST_MARK = re.compile(r"^\s*(?:(?:[-*+•·]|\d{1,3}[.)])\s+|(?:\d{1,3}[、．]|[（(]\d{1,3}[)）]|[一二三四五六七八九十]{1,3}、)\s*)")
_FENCE = re.compile(r"^\s*(```|~~~)")
# Data, not prose: YAML keys, JSON/YAML flow collections, shell prompts. Chunking can cut a code block so that
# a chunk starts inside it, without its opening fence.
_CODE_LIKE = re.compile(r"[{\[]|[A-Za-z_][\w.-]*:(?:\s|$)|\$ |>>> ")
_CODE_LINE = re.compile(r"^\s{2,}\S|[(){}\[\]=;]|^\s*(?:def|class|import|from|with|return|async|await|@)\b"
                        r"|^\s*[\w.-]+:(?:\s|$)|^\s*(?:\$|>>>) ")
_TERMINAL = tuple("。！？；.!?;：:，,、”」)）")
_LEAD_END = ("：", ":")
_EMPHASIS = re.compile(r"[*_`#>]+")

_LEAD = {"en": "According to the sources:", "zh": "根据资料："}
_NOT_COVERED = {"en": "The sources do not cover this question, so I cannot answer it from them.",
                "zh": "提供的资料没有涵盖这个问题，无法据此回答。"}
_NO_SOURCES = {"en": "No sources were given, and the extractive model can only quote sources.",
               "zh": "没有提供任何资料；抽取式模型只能引用资料中的原文。"}
MAX_ITEMS = 5  # list items quoted together when the best unit is one of them
TOPIC = 0.2  # weight of the question's share in a unit's heading
# A quote's relevance is at least this share of the best quote's: weaker units match the question only in
# passing (docs/retrieval.md, "The extractive model": CMRC 2018 dev quotes from other passages 9.5 % → 7.4 %).
RELATIVE_FLOOR = 0.6


@dataclass(frozen=True)
class Sentence:
    """A quotable unit: a sentence, a list item or a table row, with what stands above it."""

    source: int  # the n of [n]
    ordinal: int  # position in the source, for deterministic ties and document order
    text: str  # verbatim slice of the source
    kind: str = "sentence"  # sentence | item | row
    context: str = ""  # the heading it sits under, and the lead-in (list items) or previous sentence
    group: int = -1  # list items of one list share a group
    heading: str = ""  # the heading it sits under (part of `context`)


def parse_sources(text: str) -> dict[int, str]:
    """The numbered sources in a rendered prompt: XML `<source id="n">` blocks, else Markdown `[n]` sections."""
    found: dict[int, str] = {}
    for attrs, block in _XML_SOURCE.findall(text):
        m = _XML_ID.search(attrs)
        if m:
            found.setdefault(int(m.group(1)), block.strip())
    if found:
        return found
    current: int | None = None
    body: list[str] = []
    for line in text.splitlines():
        m = _MD_HEADING.match(line)
        if m or (current is not None and _QUESTION_LABEL.match(line)):
            if current is not None:
                found.setdefault(current, "\n".join(body).strip())
            current, body = (int(m.group(1)), []) if m else (None, [])
            continue
        if current is not None:
            body.append(line)
    if current is not None:
        found.setdefault(current, "\n".join(body).strip())
    return found


def source_sections(text: str) -> dict[int, str]:
    """The section each numbered source comes from: its heading path ("Guardrails > On-fail actions"), from the
    XML `location` attribute or the Markdown `### [n] source location` line. A chunk's text does not repeat its
    heading; the path's last part is what its sentences sit under, the whole path what they are about."""
    found: dict[int, str] = {}
    for attrs, _ in _XML_SOURCE.findall(text):
        m, loc = _XML_ID.search(attrs), _XML_LOCATION.search(attrs)
        if m and loc:
            found.setdefault(int(m.group(1)), loc.group(1))
    for line in text.splitlines():
        m = _MD_HEADING.match(line)
        if m:
            rest = line[m.end():].split(None, 1)  # the source name, then the location
            found.setdefault(int(m.group(1)), rest[1] if len(rest) > 1 else "")
    return {n: _LINES_SUFFIX.sub("", loc).strip() for n, loc in found.items()}


def _strip_sources(text: str) -> str:
    text = _XML_SOURCE.sub(" ", text)
    keep, inside = [], False
    for line in text.splitlines():
        if _MD_HEADING.match(line):
            inside = True
        elif inside and _QUESTION_LABEL.match(line):
            inside = False
        if not inside:
            keep.append(line)
    return "\n".join(keep)


def find_question(request: ChatRequest) -> str:
    given = request.metadata.get("question")
    if isinstance(given, str) and given.strip():
        return given.strip()
    user = request.last_user()
    labels = list(_QUESTION_LABEL.finditer(user))
    if labels:
        return user[labels[-1].end():].split("\n\n")[0].strip()
    return _strip_sources(user).strip()


# ---------------------------------------------------------------- units


def _starts_inside_code(lines: list[str]) -> bool:
    """Whether a passage begins inside a code block whose opening fence is in an earlier chunk: its fences
    are unbalanced, the first one is a bare closing fence, and the lines before it look like code."""
    fences = [i for i, line in enumerate(lines) if _FENCE.match(line)]
    if len(fences) % 2 == 0 or lines[fences[0]].strip() not in ("```", "~~~"):
        return False
    before = [line for line in lines[: fences[0]] if line.strip()]
    return bool(before) and sum(bool(_CODE_LINE.search(line)) for line in before) * 2 >= len(before)


def _sentence_spans(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Sentence spans of the paragraph text[start:end]. Line breaks inside a paragraph are wrapping, not sentence
    ends, and punctuation inside `inline code` ends nothing: the splitter sees a copy with those masked (same
    length, so the spans index the original text)."""
    flat = INLINE_CODE.sub(lambda m: "`" + "x" * (len(m.group(0)) - 2) + "`", text[start:end].replace("\n", " "))
    return [(start + a, start + b) for a, b in sentence_spans(flat)]


def _heading_like(line: str) -> bool:
    """A line that names a section rather than says something: bold-only, or short without sentence punctuation."""
    s = line.strip()
    if s.startswith("**") and s.endswith("**") and len(s) <= 80:
        return True
    return 0 < len(s) <= 40 and not s.endswith(_TERMINAL) and not _CODE_LIKE.match(s)


def _clean(text: str) -> str:
    return _EMPHASIS.sub("", text).strip()


def units(n: int, text: str, section: str = "") -> list[Sentence]:
    """Quotable units of one source: sentences of paragraphs, list items, table rows; code left out. `section`:
    the heading the source's text starts under."""
    out: list[Sentence] = []
    lines = text.splitlines(keepends=True)
    in_code = _starts_inside_code([ln.rstrip("\n") for ln in lines])
    heading = section
    block: list[int] = []  # [start, end) of the open paragraph or item
    block_kind = ""
    lead = ""  # a lead-in sentence ending in a colon, waiting for its list
    group = 0
    pos = 0

    def close() -> None:
        nonlocal block, block_kind, heading, lead, group
        if not block:
            return
        a, b = block
        raw = text[a:b].strip()
        if block_kind == "item":
            out.append(Sentence(n, len(out), text[a:b].strip(), "item", f"{heading} {lead}".strip(), group,
                                heading))
        elif "\n" not in raw and _heading_like(raw):
            heading, lead = _clean(raw), ""
            group += 1
        else:
            spans = _sentence_spans(text, a, b)
            lead = ""
            group += 1
            previous = ""
            for i, (s, e) in enumerate(spans):
                sent = text[s:e]
                if i == len(spans) - 1 and sent.endswith(_LEAD_END):
                    lead = sent  # quoted through its items, not by itself
                    continue
                if len(sent) >= 2 and not _CODE_LIKE.match(sent):
                    # the sentence before says what "it" / "它" refers to
                    out.append(Sentence(n, len(out), sent, "sentence", f"{heading} {previous}".strip(),
                                        heading=heading))
                previous = sent
        block, block_kind = [], ""

    for raw in lines:
        line = raw.rstrip("\n")
        start, pos = pos, pos + len(raw)
        stripped = line.strip()
        if _FENCE.match(line):
            close()
            in_code = not in_code
            continue
        if in_code:
            continue
        if not stripped:
            close()
            continue
        if stripped.startswith("#"):
            close()
            heading, lead = _clean(stripped), ""
            group += 1
            continue
        if stripped.startswith("<"):
            close()
            continue
        if stripped.startswith("|"):
            close()
            if not set(stripped) <= set("|-: "):
                out.append(Sentence(n, len(out), stripped, "row", heading, heading=heading))
            continue
        mark = _LIST_MARK.match(line)
        if mark and len(stripped) > len(mark.group(0).strip()):
            close()  # items of one list share `group`: only headings and paragraphs start a new one
            block, block_kind = [start + mark.end(), start + len(line)], "item"
            continue
        if block:
            block[1] = start + len(line)
        else:
            block, block_kind = [start + len(line) - len(line.lstrip()), start + len(line)], "para"
    close()
    return [u for u in out if len(u.text) >= 2]


def split_sentences(text: str) -> list[str]:
    """The quotable units of a source, as text (verbatim slices)."""
    return [u.text for u in units(0, text)]


# ---------------------------------------------------------------- choosing


def _last_part(path: str) -> str:
    return path.split(" > ")[-1].strip()


def best_sentences(question: str, sources: dict[int, str], *, max_quotes: int = 3, min_coverage: float = 0.34,
                   sections: dict[int, str] | None = None, unseen: Collection[str] = ()
                   ) -> list[tuple[float, Sentence]]:
    """The units that answer the question best, in the order they are quoted; [] when none does. `unseen`:
    identifiers of the question that the whole corpus lacks, left out of its terms."""
    sections = sections or {}
    question, reached = asked_part(question)  # the asker's e-mail, phone … (or placeholders) are not what they ask
    sentences = [u for n in sorted(sources) for u in units(n, sources[n], _last_part(sections.get(n, "")))]
    # A source sentence holding the whole question quotes it as an example ("What does min_relevance do?" in a
    # passage about questions); it does not answer it.
    echo = echo_key(question)
    if len(echo) >= 6:
        sentences = [s for s in sentences if echo not in echo_key(s.text)]
    q_terms = terms(question)
    left_out = q_terms & (set(words(" ".join(unseen))) | asked_kinds(question))
    if q_terms - left_out:  # a question that is nothing but an unseen number is still about it (and declined)
        q_terms -= left_out
    # A unit in another script than the question matches it only on its code and names (an English question's
    # words in a Chinese sentence): it cannot answer it.
    q_lang = language_of(question)
    q_scripts = question_scripts(question) | {""}
    sentences = [s for s in sentences if prose_script(s.text) in q_scripts]
    # Characters jieba cut one by one (年 假) count where a unit writes them together, never against one, unless
    # nothing else is left ("年假有几天？").
    bonus = joined_characters(question) - q_terms
    if reached and q_terms - CONTACT_WORDS:  # "mail me at …" counts where a unit says it, never against one
        bonus |= q_terms & CONTACT_WORDS
        q_terms -= CONTACT_WORDS
    if not q_terms:
        q_terms, bonus = bonus, set()
    if not sentences or not q_terms:
        return []
    q_names = names(question, q_lang) & q_terms
    spelled = {t: letters for t, letters in acronyms(question).items() if t in q_terms}
    unnamed = q_names - set().union(*(whole_words(t) for t in sources.values()))
    if any(t not in spelled or not any(spells_out(spelled[t], content(s)) for s in sources.values())
           for t in unnamed):
        return []  # the question names something the sources never mention (a piece of an identifier is not it)
    han_terms = [t for t in q_terms | bonus if HAN_RUN.fullmatch(t)]
    own = [found(s.text, han_terms, q_names, spelled) for s in sentences]
    ctx = [found(s.context, han_terms, q_names, spelled) - o for s, o in zip(sentences, own, strict=True)]
    q_pairs = pairs(words(question))
    df: dict[str, int] = {}
    for ts in own:
        for t in ts & (q_terms | bonus):
            df[t] = df.get(t, 0) + 1
    n = len(sentences)
    # A question term found in no sentence keeps the highest weight: missing it lowers coverage the most.
    idf = {t: math.log(1 + n / df.get(t, 0.5)) for t in q_terms | bonus}
    total = sum(idf[t] for t in q_terms)
    # A sentence sharing one word with a two-word question ("reset my password") does not answer it.
    need_terms = min(2, len(q_terms))
    scored: list[tuple[float, float, Sentence]] = []  # ranking score, relevance, unit
    for sent, o, c in zip(sentences, own, ctx, strict=True):
        mine, around = o & (q_terms | bonus), c & (q_terms | bonus)
        coverage = (sum(idf[t] for t in mine) + 0.5 * sum(idf[t] for t in around)) / total
        if coverage < min_coverage or len(mine | around) < need_terms or not (mine or sent.kind == "item"):
            continue
        order = len(q_pairs & pairs(words(sent.text))) / len(q_pairs) if q_pairs else 0.0
        # The heading says what a unit is about: the question's words there beat the same words met in passing
        # in a section about something else.
        about = f"{sections.get(sent.source, '')} {sent.heading}"
        topic = sum(idf[t] for t in found(about, han_terms, q_names, spelled) & (q_terms | bonus)) / total
        relevance = coverage + 0.1 * order + TOPIC * topic
        # a quote in the reader's language beats an equally matching one in another language (ranking only)
        same_language = 0.25 if language_of(sent.text) == q_lang else 0.0
        scored.append((relevance + same_language, relevance, sent))
    scored.sort(key=lambda x: (-x[0], x[2].source, x[2].ordinal))
    if not scored:
        return []
    # Every quote matches the question at least RELATIVE_FLOOR as well as the best one does. The floor is taken
    # on relevance alone: the language bonus, added to every unit in the question's language, would lift a weak
    # match past it.
    floor = max(min_coverage, max(rel for _, rel, _ in scored) * RELATIVE_FLOOR)
    qualified = [(score, sent) for score, rel, sent in scored if rel >= floor]
    picked: list[tuple[float, Sentence]] = []
    seen: set[str] = set()
    for score, sent in qualified:
        if len(picked) >= max_quotes:
            break
        group = [sent]
        if sent.kind == "item" and not picked:  # the list that answers, in its own order
            group = sorted((s for _, s in qualified if s.kind == "item" and s.source == sent.source
                            and s.group == sent.group), key=lambda s: s.ordinal)[:MAX_ITEMS]
            if sent not in group:
                group = [sent]
        for s in group:
            key = " ".join(s.text.split()).lower()
            if key not in seen:
                seen.add(key)
                picked.append((score, s))
    return picked


def other_script(question: str, sources: dict[int, str]) -> str:
    """The sources' language when every source with prose is written in another script than the question and
    its content words (their words can match it only on code and names, and there is no model here to
    translate); '' otherwise."""
    q_scripts = question_scripts(asked_part(question)[0])
    found_languages = (detect_language(prose(" ".join(u.text for u in units(n, text))))
                       for n, text in sources.items())
    languages = [lang for lang in found_languages if lang]
    if not q_scripts or not languages or any(script(lang) in q_scripts for lang in languages):
        return ""
    return max(sorted(set(languages)), key=languages.count)


def extractive_answer(question: str, sources: dict[int, str], *, max_quotes: int = 3,
                      min_coverage: float = 0.34, sections: dict[int, str] | None = None,
                      unseen: Collection[str] = ()) -> str:
    language = "zh" if language_of(question) == "zh" else "en"
    if not sources:
        return _NO_SOURCES[language]
    picked = best_sentences(question, sources, max_quotes=max_quotes, min_coverage=min_coverage,
                            sections=sections, unseen=unseen)
    if not picked:
        other = other_script(question, sources)
        return cross_language_message(language_of(question), other) if other else _NOT_COVERED[language]
    lines = [_LEAD[language]]
    for _, sent in picked:
        quote = f"「{sent.text}」" if language == "zh" else f"“{sent.text}”"
        lines.append(f"- {quote} [{sent.source}]")
    return "\n".join(lines)


class ExtractiveProvider(BaseProvider):
    """The offline model behind `provider: extractive`."""

    name = "extractive"

    def chat(self, alias: ModelAlias, request: ChatRequest, timeout: float) -> ProviderResponse:
        prompt = "\n\n".join(m.content for m in request.messages)
        sources: dict[int, str] = {}
        sections: dict[int, str] = {}
        for m in request.messages:
            for n, text in parse_sources(m.content).items():
                sources.setdefault(n, text)
            for n, where in source_sections(m.content).items():
                sections.setdefault(n, where)
        params = alias.params or {}
        unseen = request.metadata.get("unseen_identifiers") or ()
        text = extractive_answer(find_question(request), sources,
                                 max_quotes=int(params.get("max_quotes", 3)),
                                 min_coverage=float(params.get("min_coverage", 0.34)), sections=sections,
                                 unseen=[str(t) for t in unseen] if isinstance(unseen, (list, tuple)) else ())
        usage = Usage(input_tokens=estimate_tokens(prompt), output_tokens=estimate_tokens(text))
        return ProviderResponse(text, usage, alias.model or "extractive", "stop")
