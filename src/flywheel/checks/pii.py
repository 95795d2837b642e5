"""PII detection and reversible redaction; the `pii` check.

    - pii                                   # fails when any PII is found (DATE_TIME and URL excepted)
    - pii: [EMAIL_ADDRESS, CN_MOBILE]       # only these entity types
    - pii: {entities: all}                  # every type, dates and URLs included
    - pii: {entities: [...], threshold: 0.6, backend: presidio, allow: [support@example.com]}

Entity types: EMAIL_ADDRESS, PHONE_NUMBER, CREDIT_CARD (Luhn), IBAN_CODE (MOD 97), IP_ADDRESS, URL,
US_SSN, US_DRIVER_LICENSE, DATE_TIME, CN_RESIDENT_ID (GB 11643 checksum and birth date), CN_MOBILE,
CN_BANK_CARD (Luhn), SECRET (API keys, tokens, private keys, passwords); and (`pii_recognizers_cn`) CN_QQ,
CN_WECHAT, PASSPORT, HK_ID and TW_ID (check characters), MO_ID, BANK_ACCOUNT, CN_LICENSE_PLATE, CN_ADDRESS. With `backend: presidio`
Presidio's other types (CRYPTO, UK_NHS, US_ITIN, US_PASSPORT, …) are found too.

Backends: `regex` (default) runs flywheel's recognizers directly: pure Python, no dependency,
about 0.3 ms per KB. `presidio` runs them inside Presidio's AnalyzerEngine (NoOpNlpEngine, no model)
together with Presidio's remaining predefined recognizers; it needs `presidio-analyzer`, whose import
takes seconds (it pulls in spaCy and torch), so it is opt-in.

Redaction: `redact(text)` returns the text with placeholders (`<EMAIL_ADDRESS_1_qhzvk>`: type, number and
the vault's random nonce) and a `Vault` mapping them back; `restore(answer, vault)` puts the values back into a
model's answer, and `restore_stream` does so for a streamed answer. Only the vault's own placeholders are
restored: a `<EMAIL_ADDRESS_1>` planted in a retrieved document stays as written. The cache keys a masked question
by `without_nonces(text)` and replays a cached answer with `renonce(answer, stored, current)`, which re-issues
only the stored nonce's placeholders for the current run. `redact_for_storage(obj)` masks irreversibly
(`<EMAIL_ADDRESS>`) every string inside a JSON-like object before it is written to traces.
`pseudonymize(fields, keep)` masks one record (an eval case, a training row) consistently across its fields
(the same value is `<EMAIL_ADDRESS_1>` in the input and in the correction), keeping the values of chosen fields
that no masked field holds; secrets are masked in every field. Its placeholders carry no nonce (they are stable
per record), and the nonce'd placeholders a guard left in a stored trace are renumbered the same way.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from flywheel.checks import pii_presidio
from flywheel.checks.base import Check, CheckContext, register
from flywheel.checks.pii_placeholders import (
    PLACEHOLDER,
    Vault,
    new_nonce,
    placeholder,
    placeholder_type,
    renonce,
    restore,
    restore_stream,
    without_nonces,
)
from flywheel.checks.pii_recognizers import PiiEntity, Recognizer, builtin_recognizers
from flywheel.checks.pii_recognizers_cn import cn_recognizers
from flywheel.checks.pii_secrets import secret_recognizers
from flywheel.text import split_sentences
from flywheel.text.secrets import REDACTED, scrub_secrets
from flywheel.types import CheckResult

__all__ = [
    "CONTEXTUAL",
    "ENTITY_TYPES",
    "PLACEHOLDER",
    "PiiAnalyzer",
    "PiiCheck",
    "PiiEntity",
    "Pseudonymized",
    "Vault",
    "analyzer",
    "asked_part",
    "find_pii",
    "new_nonce",
    "placeholder",
    "placeholder_type",
    "pseudonymize",
    "redact",
    "redact_for_storage",
    "renonce",
    "restore",
    "restore_stream",
    "sensitive_pii",
    "without_nonces",
    "without_personal",
]

# When two candidates overlap and score the same, the more specific type wins.
_PRIORITY = {"CN_RESIDENT_ID": 6, "HK_ID": 6, "TW_ID": 6, "CN_BANK_CARD": 5, "SECRET": 5, "IBAN_CODE": 5,
             "EMAIL_ADDRESS": 5, "PASSPORT": 5, "MO_ID": 5, "CN_QQ": 4, "CN_WECHAT": 4, "BANK_ACCOUNT": 4,
             "CN_MOBILE": 4, "CN_LICENSE_PLATE": 3, "CN_ADDRESS": 3, "CREDIT_CARD": 3, "US_SSN": 3, "IP_ADDRESS": 3, "US_DRIVER_LICENSE": 3,
             "URL": 2, "PHONE_NUMBER": 1, "DATE_TIME": 1}
ENTITY_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "URL", "US_SSN",
                "US_DRIVER_LICENSE", "DATE_TIME", "CN_RESIDENT_ID", "CN_MOBILE", "CN_BANK_CARD", "SECRET",
                "CN_QQ", "CN_WECHAT", "PASSPORT", "HK_ID", "TW_ID", "MO_ID", "BANK_ACCOUNT", "CN_LICENSE_PLATE",
                "CN_ADDRESS")
# Names users may write for an entity type.
ALIASES = {"EMAIL": "EMAIL_ADDRESS", "PHONE": "PHONE_NUMBER", "IBAN": "IBAN_CODE", "SSN": "US_SSN",
           "IP": "IP_ADDRESS", "DOMAIN_NAME": "URL", "DATE": "DATE_TIME", "API_KEY": "SECRET",
           "CN_ID": "CN_RESIDENT_ID", "DRIVER_LICENSE": "US_DRIVER_LICENSE", "CARD": "CREDIT_CARD",
           "QQ": "CN_QQ", "WECHAT": "CN_WECHAT", "WEIXIN": "CN_WECHAT", "HKID": "HK_ID",
           "LICENSE_PLATE": "CN_LICENSE_PLATE", "CAR_PLATE": "CN_LICENSE_PLATE", "ADDRESS": "CN_ADDRESS"}
# Dates and URLs are personal only in context ("born on 2/8/1935" vs "released in 2019"), so the check,
# `redact` and `redact_for_storage` leave them alone unless asked for by name (or with `entities: all`).
CONTEXTUAL = frozenset({"DATE_TIME", "URL"})
BACKENDS = ("regex", "presidio")
MAX_CHARS = 2_000_000  # longer input is scanned up to here; the rest is reported as unscanned


def canonical(entity: str) -> str:
    name = str(entity).strip().upper().replace("-", "_").replace(" ", "_")
    return ALIASES.get(name, name)


class PiiAnalyzer:
    """Finds PII spans. Build once and reuse (see `analyzer()`); thread-safe, holds no per-call state."""

    def __init__(self, entities: Iterable[str] | None = None, threshold: float = 0.5, backend: str = "regex",
                 allow: Iterable[str] = ()):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be between 0 and 1, got {threshold!r}")
        if backend == "presidio" and not pii_presidio.available():
            raise ValueError("backend `presidio` needs the presidio-analyzer package "
                             "(pip install presidio-analyzer), or use backend: regex")
        self.entities = frozenset(canonical(e) for e in entities) if entities else None
        unknown = sorted(self.entities - set(ENTITY_TYPES)) if self.entities and backend == "regex" else []
        if unknown:  # an unknown name would find nothing: a guard that never fires, PII stored in clear
            raise ValueError(f"unknown PII entity type(s) {', '.join(unknown)}; known: {', '.join(ENTITY_TYPES)} "
                             f"(or the short names {', '.join(ALIASES)})")
        self.threshold = float(threshold)
        self.backend = backend
        self.allow = frozenset(a.strip().casefold() for a in allow)
        recognizers: list[Recognizer] = builtin_recognizers() + cn_recognizers() + secret_recognizers()
        if self.entities is not None:
            recognizers = [r for r in recognizers if r.entity in self.entities]
        self.recognizers = recognizers

    def candidates(self, text: str) -> list[PiiEntity]:
        """Every candidate above the threshold, overlaps not yet resolved."""
        if self.backend == "presidio":
            found = pii_presidio.analyze(pii_presidio.engine(self.recognizers), text,
                                         sorted(self.entities) if self.entities else None)
            if self.entities is not None:
                found = [e for e in found if e.type in self.entities]
        else:
            found = [e for r in self.recognizers for e in r.find(text)]
        return [e for e in found if e.score >= self.threshold and e.text.strip().casefold() not in self.allow]

    def analyze(self, text: str) -> list[PiiEntity]:
        """Non-overlapping PII spans in text order. Full-width forms (`１３８…`, `ａｂｃ＠ｑｑ．ｃｏｍ`, typed with
        a Chinese or Japanese input method) are read as their ASCII twins; each span's text is as written."""
        if not text:
            return []
        text = text[:MAX_CHARS]
        folded = text.translate(_HALF_WIDTH)  # one character for one: the offsets stay those of `text`
        found = resolve(self.candidates(folded))
        if folded == text:
            return found
        return [dataclasses.replace(e, text=text[e.start:e.end]) for e in found]


# U+FF01–U+FF5E are the full-width twins of ASCII "!" … "~" (U+0021–U+007E); U+3000 is the ideographic space.
_HALF_WIDTH = {**{c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)}, 0x3000: 0x20}


def resolve(candidates: list[PiiEntity]) -> list[PiiEntity]:
    """Keep the best of overlapping candidates: higher score, then more specific type, then longer."""
    ranked = sorted(candidates, key=lambda e: (-e.score, -_PRIORITY.get(e.type, 2), -(e.end - e.start), e.start))
    starts: list[int] = []
    kept: list[PiiEntity] = []
    for ent in ranked:
        i = bisect.bisect_left(starts, ent.start)
        if i > 0 and kept[i - 1].end > ent.start or i < len(kept) and kept[i].start < ent.end:
            continue
        starts.insert(i, ent.start)
        kept.insert(i, ent)
    return kept


@functools.lru_cache(maxsize=32)
def _cached(entities: frozenset[str] | None, threshold: float, backend: str, allow: frozenset[str]) -> PiiAnalyzer:
    return PiiAnalyzer(entities, threshold, backend, allow)


def analyzer(entities: Iterable[str] | None = None, threshold: float = 0.5, backend: str = "regex",
             allow: Iterable[str] = ()) -> PiiAnalyzer:
    """A cached analyzer for these settings."""
    ents = frozenset(canonical(e) for e in entities) if entities else None
    return _cached(ents, float(threshold), backend, frozenset(allow))


def find_pii(text: str, entities: Iterable[str] | None = None, threshold: float = 0.5,
             backend: str = "regex") -> list[PiiEntity]:
    """Every PII span of the given types (default: every type, DATE_TIME and URL included)."""
    return analyzer(entities, threshold, backend).analyze(text)


def sensitive_pii(text: str, entities: Iterable[str] | str | None = None, threshold: float = 0.5,
                  backend: str = "regex") -> list[PiiEntity]:
    """The spans a guard acts on: the named types, every type for "all", or by default every type
    except the contextual ones (DATE_TIME, URL)."""
    if entities == "all":
        return find_pii(text, None, threshold, backend)
    if entities:
        return find_pii(text, list(entities), threshold, backend)
    return [e for e in find_pii(text, None, threshold, backend) if e.type not in CONTEXTUAL]


# ---------------------------------------------------------------- reversible redaction


def without_personal(text: str) -> tuple[str, bool]:
    """The text without the user's own details — what a default `pii` guard masks, and the placeholders a
    `redact` guard left (`<EMAIL_ADDRESS_1_qhzvk>`, `<PHONE_NUMBER_1>`) — each replaced by a space, and whether it
    had any. What a question asks about is never the asker's e-mail or phone number (the extractive model and
    the retriever's keywords leave them out); an order number or an error code is no personal data and stays."""
    spans = [(m.start(), m.end()) for m in PLACEHOLDER.finditer(text)]
    spans += [(e.start, e.end) for e in sensitive_pii(PLACEHOLDER.sub(lambda m: " " * len(m.group(0)), text))]
    if not spans:
        return text, False
    out, pos = [], 0
    for start, end in sorted(spans):
        out.append(text[pos:start] + " " if start >= pos else "")
        pos = max(pos, end)
    return "".join(out) + text[pos:], True


def asked_part(question: str) -> tuple[str, bool]:
    """What a question asks, without the asker's own details (`without_personal`), and whether it had any. A
    sentence that carries them ("Mail me at ann@example.com", "电话 13812345678") says how to reach the asker, not
    what they ask: it is left out when other sentences are left, else only the details are."""
    sentences = [s for s in split_sentences(question) if s.strip()]
    kept = [s for s in sentences if not without_personal(s)[1]]
    if 0 < len(kept) < len(sentences):
        return " ".join(kept), True
    return without_personal(question)


def _replace(text: str, spans: list[PiiEntity], make: Any) -> str:
    out, pos = [], 0
    for ent in sorted(spans, key=lambda e: e.start):
        if ent.start < pos:
            continue
        out.append(text[pos:ent.start])
        out.append(make(ent))
        pos = ent.end
    out.append(text[pos:])
    return "".join(out)


def redact(text: str, entities: Iterable[str] | Iterable[PiiEntity] | str | None = None, *,
           vault: Vault | None = None, threshold: float = 0.5, backend: str = "regex") -> tuple[str, Vault]:
    """Replace PII with numbered placeholders. `entities` is a list of entity types to redact (default:
    all but DATE_TIME and URL; "all" for every type) or the spans already found by `find_pii`.
    Returns (redacted text, vault)."""
    vault = Vault() if vault is None else vault
    given = [entities] if isinstance(entities, str) else list(entities) if entities is not None else None
    spans: list[PiiEntity]
    if given and all(isinstance(e, PiiEntity) for e in given):
        spans = cast("list[PiiEntity]", given)
    else:
        spans = sensitive_pii(text, "all" if given == ["all"] else given, threshold, backend)  # type: ignore[arg-type]
    return _replace(text, spans, lambda e: vault.placeholder_for(e.type, e.text)), vault


def redact_for_storage(value: Any, entities: Iterable[str] | str | None = None, *, patterns: Iterable[str] = (),
                       threshold: float = 0.5) -> Any:
    """Irreversibly mask PII (`<EMAIL_ADDRESS>`) and any extra regexes (`<REDACTED>`, e.g. the
    `tracing.redact` list) in every string of a JSON-like value (str, dict, list, tuple). Used
    before spans and payloads are written to the store when redaction is configured."""
    extra = [re.compile(p) for p in patterns]

    def scrub(obj: Any) -> Any:
        if isinstance(obj, str):
            masked = _replace(obj, sensitive_pii(obj, entities, threshold), lambda e: f"<{e.type}>")
            for rx in extra:
                masked = rx.sub("<REDACTED>", masked)
            return masked
        if isinstance(obj, dict):
            return {k: scrub(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return type(obj)(scrub(v) for v in obj)
        return obj

    return scrub(value)


# ---------------------------------------------------------------- consistent pseudonyms for one record

# Types whose values are written with varying separators ("415-555-0134", "415 555 0134"): compared without them.
_SEPARATED = frozenset({"PHONE_NUMBER", "CN_MOBILE", "CREDIT_CARD", "CN_BANK_CARD", "IBAN_CODE", "US_SSN",
                        "CN_RESIDENT_ID", "US_DRIVER_LICENSE", "HK_ID", "TW_ID", "MO_ID", "BANK_ACCOUNT",
                        "CN_LICENSE_PLATE"})


def _identity(entity_type: str, value: str) -> str:
    """What makes two spans the same value: case and spacing ignored (separators too for numbers)."""
    folded = value.casefold()
    folded = re.sub(r"[\W_]", "", folded) if entity_type in _SEPARATED else "".join(folded.split())
    return f"{entity_type}\0{folded}"


@dataclass
class Pseudonymized:
    """One record masked by `pseudonymize`: its fields' texts and what was done to them, per field."""

    fields: dict[str, list[str | None]]  # field → masked texts, in the order given
    vault: Vault  # placeholder → the value it stands for (never written anywhere by flywheel)
    masked: dict[str, Counter[str]] = field(default_factory=dict)  # field → entity type → spans masked
    kept: dict[str, Counter[str]] = field(default_factory=dict)  # field → entity type → spans left as written
    exclusive: dict[str, Counter[str]] = field(default_factory=dict)  # field → type → spans no other field holds

    def text(self, name: str, i: int = 0) -> str | None:
        return self.fields[name][i]


def pseudonymize(fields: Mapping[str, Sequence[str | None]], keep: Iterable[str] = (), *,
                 entities: Iterable[str] | str | None = None, threshold: float = 0.5) -> Pseudonymized:
    """Mask the PII of one record consistently across its fields: each value gets a numbered placeholder
    (`<EMAIL_ADDRESS_1>`) that is the same wherever the value occurs in the record (case and spacing aside),
    and different values get different numbers, numbered in field order. A field named in `keep` keeps the
    values that occur in no masked field (a corrected e-mail address that is the point of a correction); a
    value that a masked field holds too gets its placeholder in the kept field as well, so keeping one field
    never reveals what another one hides. Secrets are masked in every field, kept or not: SECRET spans become
    `<SECRET>`, and the secret scrubber (flywheel.text.secrets) runs on every text afterwards."""
    keep = frozenset(keep)
    found = {name: [_with_issued(t, sensitive_pii(t, entities, threshold)) if t else [] for t in texts]
             for name, texts in fields.items()}
    holders: dict[str, set[str]] = {}  # value identity → fields that hold it
    for name, per_text in found.items():
        for ent in (e for spans in per_text for e in spans if e.type != "SECRET"):
            holders.setdefault(_identity(ent.type, ent.text), set()).add(name)
    hidden = {key for key, names in holders.items() if names - keep}
    numbering = _Numbering(holders, hidden, keep)
    result = Pseudonymized(fields={}, vault=numbering.vault)
    for name, texts in fields.items():
        for table in (numbering.masked, numbering.kept, numbering.exclusive):
            table.setdefault(name, Counter())
        put = functools.partial(numbering.put, name)
        out: list[str | None] = []
        for text, spans in zip(texts, found[name], strict=True):
            if not text:
                out.append(text)
                continue
            replaced = _replace(text, spans, put)
            scrubbed = scrub_secrets(replaced)
            numbering.masked[name]["SECRET"] += max(0, scrubbed.count(REDACTED) - replaced.count(REDACTED))
            out.append(scrubbed)
        result.fields[name] = out
        result.masked[name] = +numbering.masked[name]
        result.kept[name] = numbering.kept[name]
        result.exclusive[name] = numbering.exclusive[name]
    return result


def _with_issued(text: str, spans: list[PiiEntity]) -> list[PiiEntity]:
    """The spans, plus the placeholders a guard issued at serve time (`<EMAIL_ADDRESS_1_qhzvk>`, kept in the
    stored trace): they get the record's own numbering too, so an exported row carries no request's nonce."""
    issued = [PiiEntity(m.group(1), m.start(), m.end(), 1.0, m.group(0), ISSUED)
              for m in PLACEHOLDER.finditer(text) if m.group(3)]
    return resolve(spans + issued) if issued else spans


ISSUED = "issued-placeholder"  # the recognizer name of a placeholder found in a record


class _Numbering:
    """The placeholders of one record and the counts of what `pseudonymize` did, per field."""

    def __init__(self, holders: dict[str, set[str]], hidden: set[str], keep: frozenset[str]):
        self.holders, self.hidden, self.keep = holders, hidden, keep
        self.vault = Vault(nonce="")  # stable per record: <EMAIL_ADDRESS_1>
        self.numbers: dict[str, str] = {}  # value identity → placeholder
        self.per_type: Counter[str] = Counter()
        self.masked: dict[str, Counter[str]] = {}
        self.kept: dict[str, Counter[str]] = {}
        self.exclusive: dict[str, Counter[str]] = {}

    def put(self, name: str, ent: PiiEntity) -> str:
        masked = self.masked.setdefault(name, Counter())
        kept = self.kept.setdefault(name, Counter())
        exclusive = self.exclusive.setdefault(name, Counter())
        if ent.type == "SECRET":
            masked["SECRET"] += 1
            return "<SECRET>"
        key = _identity(ent.type, ent.text)
        if self.holders[key] == {name}:
            exclusive[ent.type] += 1
        if name in self.keep and key not in self.hidden and ent.recognizer != ISSUED:
            kept[ent.type] += 1
            return ent.text
        masked[ent.type] += 1
        if key not in self.numbers:
            self.per_type[ent.type] += 1
            self.numbers[key] = placeholder(ent.type, self.per_type[ent.type])
            self.vault[self.numbers[key]] = ent.text
        return self.numbers[key]


# ---------------------------------------------------------------- the check


def _as_text(output: Any) -> str:
    if isinstance(output, bytes | bytearray):
        return bytes(output).decode("utf-8", errors="replace")
    return output if isinstance(output, str) else str(output)


@register
class PiiCheck(Check):
    """pii: [ENTITY, …] or {entities, threshold, backend, allow} — passes when the text holds no PII."""

    name = "pii"

    def __init__(self, arg: Any = None):
        super().__init__(arg)
        opts: dict[str, Any]
        if arg is None or arg is True:
            opts = {}
        elif isinstance(arg, str):
            opts = {"entities": [arg]}
        elif isinstance(arg, list):
            opts = {"entities": arg}
        elif isinstance(arg, dict):
            opts = dict(arg)
        else:
            raise ValueError(f"pii takes a list of entity types or a mapping, got {arg!r}")
        unknown = set(opts) - {"entities", "threshold", "backend", "allow", "on_fail"}
        if unknown:
            raise ValueError(f"unknown pii option(s): {', '.join(sorted(unknown))} "
                             "(valid: entities, threshold, backend, allow)")
        ents = opts.get("entities")
        if ents is not None and ents != "all" and (not isinstance(ents, list) or not all(isinstance(e, str) for e in ents)):
            raise ValueError(f"pii entities must be a list of entity type names or \"all\", got {ents!r}")
        self.analyzer = analyzer(None if ents == "all" else ents, float(opts.get("threshold", 0.5)),
                                 str(opts.get("backend", "regex")), [str(a) for a in opts.get("allow", [])])
        self.skip = CONTEXTUAL if ents is None else frozenset()

    def found(self, text: str) -> list[PiiEntity]:
        return [e for e in self.analyzer.analyze(text) if e.type not in self.skip]

    def redact(self, text: str, vault: Vault | None = None) -> tuple[str, Vault]:
        """Numbered placeholders for what this check finds (the guard's `redact` action); the vault restores them."""
        return redact(text, self.found(text), vault=vault)

    def evaluate(self, output: str, ctx: CheckContext) -> CheckResult:
        text = _as_text(output)
        found = self.found(text)
        details: dict[str, Any] = {"entities": [e.as_dict() for e in found]}
        if len(text) > MAX_CHARS:
            details["unscanned_chars"] = len(text) - MAX_CHARS
        if not found:
            return CheckResult(passed=True, score=1.0, reason="no PII found", details=details)
        kinds = sorted({e.type for e in found})
        if len(text) <= 20_000:
            details["redacted"] = _replace(text, found, lambda e: f"<{e.type}>")
        return CheckResult(passed=False, score=0.0, reason=f"found {len(found)} PII span(s): {', '.join(kinds)}",
                           details=details)
