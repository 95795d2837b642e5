"""Secrets never reach stored or exported spans: scrub them, and make every value plain JSON, in one pass.

`Redactor.clean(value)` walks inputs/outputs/attributes/errors recursively (dicts, lists, pydantic models,
dataclasses, numpy values …) and returns JSON-native data where
- API keys and tokens are replaced by "[REDACTED]": OpenAI/Anthropic `sk-…`, `Bearer …`, AWS key ids, GitHub,
  Google, Slack tokens, JWTs, private-key blocks, `api_key=…` / `Authorization: …` / `password=…` values,
  passwords inside URLs, and the exact values of secret environment variables (those named by
  `models.*.api_key_env` and any variable called *_API_KEY, *_TOKEN, *_SECRET, *PASSWORD …);
- values under secret-named keys (`api_key`, `authorization`, `password`, `x-api-key`, `*_secret` …) are
  replaced whole;
- extra regexes from `tracing.redact` in flywheel.yaml are scrubbed too;
- long strings and lists are capped, NUL characters and non-finite floats made storable.
It runs on the writer/exporter threads, never on the traced call's thread.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from pathlib import PurePath
from typing import Any, NamedTuple

from flywheel.errors import ConfigError
from flywheel.types import Span

REDACTED = "[REDACTED]"
MAX_STRING = 20_000  # characters kept per string
MAX_ITEMS = 1_000  # items kept per list / dict
MAX_DEPTH = 24

_KEYWORDS = (r"api[_-]?key|apikey|x-api-key|x-goog-api-key|authorization|proxy-authorization|password|passwd|pwd"
             r"|secret|client[_-]?secret|secret[_-]?key|private[_-]?key|aws_secret_access_key"
             r"|(?:access|refresh|auth|api|id|session|bearer)[_-]?token")
# A dict key whose value is a secret, whatever the value looks like.
SECRET_KEY = re.compile(rf"(?i)^(?:.*[_.-])?(?:{_KEYWORDS}|cookie|set-cookie)$")

_SECRET_ENV = re.compile(r"(?i)(?:API_?KEY|TOKEN|SECRET|SECRET_KEY|PASSWORD|PASSWD|CREDENTIALS?|PRIVATE_KEY)$")
_UNSET = object()
_CACHE_MAX_LEN = 128
_CACHE_SIZE = 4096
_MIN_SECRET_LEN = 8  # shorter env values are too likely to be ordinary words


def _at_word_start(m: re.Match) -> str:
    """Token-shaped secrets: only when not glued to a preceding letter/digit (so `task-…` is not `sk-…`)."""
    i = m.start()
    return m.group(0) if i > 0 and m.string[i - 1].isalnum() else REDACTED


# For `<keyword> = value`: what may come right before the keyword (lower case). `OPENAI_API_KEY=…`,
# `"client_secret": "…"`, `Authorization: Basic …` all qualify; `max_tokens=5` or `monkey: 3` do not.
_KV_BEFORE = {
    "key": re.compile(r"(?:api|secret|private|access|signing|encryption)[_-]?$"),
    "token": re.compile(r"(?:access|refresh|auth|api|id|session|bearer|secret|csrf|github|slack|hf)[_-]?$"),
}
_LETTER_BEFORE = re.compile(r"[a-z]$")


_KV_TRIGGERS = ("key", "authorization", "passw", "pwd", "secret", "token")
# Matched on the lower-cased text (a case-insensitive alternation is ~5x slower in `re`).
_KV = re.compile(r"(?P<kw>key|authorization|passw(?:or)?d|pwd|secret|token)[\"']?\s*[:=]\s*[\"']?"
                 r"(?!\[redacted\])(?P<val>(?:(?:bearer|basic|token)\s+)?[^\s\"',;&}\]]+)")


def _scrub_kv(text: str, low: str) -> str:
    """`<secret keyword> = value` → keep the keyword, drop the value."""
    if len(low) != len(text):  # lower() changed the length (rare Unicode): match case-insensitively instead
        low = text  # positions must line up; the (?i) fallback below handles case
        pattern = re.compile(_KV.pattern, re.IGNORECASE)
    else:
        pattern = _KV
    out: list[str] = []
    pos = 0
    for m in pattern.finditer(low):
        kw = m.group("kw").lower()
        before = low[max(0, m.start() - 24):m.start()].lower()
        rule = _KV_BEFORE.get(kw)
        if rule is not None and not rule.search(before):
            continue
        if rule is None and _LETTER_BEFORE.search(before):  # `passwords: 3` is fine, `db_password=x` is not
            continue
        out.append(text[pos:m.start("val")])
        out.append(REDACTED)
        pos = m.end()
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _url_password(m: re.Match) -> str:
    return f"://{m.group('user')}:{REDACTED}@"


class _Rule(NamedTuple):
    triggers: tuple[str, ...]  # the regex runs only when one of these occurs in the text (cheap `in` checks)
    lower: bool  # check the triggers in the lower-cased text
    regex: re.Pattern
    replace: Callable[[re.Match], str] | str


# Each regex starts with a literal so the `re` engine can skip ahead; word boundaries are checked in the
# replacement instead of a leading `\b`, which would make the engine try every position.
_RULES = [
    _Rule(("PRIVATE KEY-----",), False,
          re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"), REDACTED),
    _Rule(("sk-",), False, re.compile(r"sk-(?:ant-|proj-|or-|svcacct-)?[A-Za-z0-9_\-]{16,}"), _at_word_start),
    _Rule(("AKIA", "ASIA", "AGPA", "AIDA", "AROA"), False,
          re.compile(r"(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}(?![0-9A-Za-z])"), _at_word_start),
    _Rule(("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), False,
          re.compile(r"gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}"), _at_word_start),
    _Rule(("AIza",), False, re.compile(r"AIza[0-9A-Za-z_\-]{35}"), _at_word_start),
    _Rule(("xox",), False, re.compile(r"xox[abprs]-[A-Za-z0-9\-]{10,}"), _at_word_start),
    _Rule(("hf_",), False, re.compile(r"hf_[A-Za-z0-9]{30,}"), _at_word_start),
    _Rule(("eyJ",), False, re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
          _at_word_start),
    _Rule(("bearer",), True, re.compile(r"(?i:bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*"), _at_word_start),
    _Rule(("://",), False, re.compile(r"://(?P<user>[^/\s:@]+):(?P<pw>[^@\s/]+)@"), _url_password),
]


class Redactor:
    """Scrubs secrets and converts values to storable JSON. Call it on a Span (the `tracer.redactor` API)."""

    def __init__(self, extra_patterns: Iterable[str] = (), secret_values: Iterable[str] = (), *,
                 capture_content: bool = True, pii: bool | Iterable[str] = False):
        self._extra: list[re.Pattern] = []
        for i, pat in enumerate(extra_patterns):
            try:
                self._extra.append(re.compile(pat))
            except re.error as exc:
                raise ConfigError(f"`tracing.redact[{i}]` is not a valid regular expression: {exc}",
                                  hint="fix the pattern (Python `re` syntax) in flywheel.yaml") from None
        # Exact secret values first (longest first): a generic pattern could otherwise cut one in half.
        self._values = sorted({v for v in secret_values if v and len(v) >= _MIN_SECRET_LEN}, key=len, reverse=True)
        self.capture_content = capture_content
        self._cache: dict[str, str] = {}
        # PII masking before storage: False (off), True (the default sensitive types) or a list of types
        self._pii = pii if isinstance(pii, bool) else list(pii)
        self._mask_pii: Any = None
        if self._pii is not False:
            from flywheel.checks.pii import redact_for_storage

            entities = None if self._pii is True else self._pii
            self._mask_pii = lambda text: redact_for_storage(text, entities)

    @classmethod
    def from_config(cls, tracing: Any = None, models: Mapping[str, Any] | None = None,
                    env: Mapping[str, str] | None = None) -> Redactor:
        """From `tracing:` (TracingConfig: redact, capture_content) and `models:` (their api_key_env values)."""
        env = os.environ if env is None else env
        names = {name for name in env if _SECRET_ENV.search(name)}
        for alias in (models or {}).values():
            key_env = getattr(alias, "api_key_env", None)
            if key_env:
                names.add(key_env)
        values = [env[n] for n in names if n in env]
        return cls(getattr(tracing, "redact", None) or (), values,
                   capture_content=getattr(tracing, "capture_content", True),
                   pii=getattr(tracing, "redact_pii", False))

    # -------------------------------------------------------------- text and values
    def scrub_text(self, text: str) -> str:
        if len(text) <= _CACHE_MAX_LEN:  # short strings (roles, names, models) repeat in every span
            hit = self._cache.get(text)
            if hit is None:
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()
                hit = self._cache[text] = self._scrub(text)
            return hit
        return self._scrub(text)

    def _scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, REDACTED)
        low = text.lower()
        for rule in _RULES:
            hay = low if rule.lower else text
            for trig in rule.triggers:
                if trig in hay:
                    text = rule.regex.sub(rule.replace, text)
                    low = text.lower()
                    break
        if any(t in low for t in _KV_TRIGGERS) and ("=" in text or ":" in text):
            text = _scrub_kv(text, low)
        for rx in self._extra:
            text = rx.sub(REDACTED, text)
        if self._mask_pii is not None:
            text = self._mask_pii(text)
        return text

    def clean(self, value: Any) -> Any:
        """JSON-native copy of `value` with secrets scrubbed."""
        return jsonable(value, self.scrub_text)

    def __call__(self, record: Span) -> Span:
        from flywheel.tracing.tracer import make_span

        fields = dict(record.__dict__)
        if self.capture_content:
            fields["inputs"] = self.clean(record.inputs)
            fields["outputs"] = self.clean(record.outputs)
        else:
            fields["inputs"] = fields["outputs"] = None
        fields["attributes"] = self.clean(record.attributes) if record.attributes else {}
        if record.error is not None:
            fields["error"] = _cap(self.scrub_text(_no_nul(str(record.error))))
        fields["name"] = self.scrub_text(_no_nul(str(record.name)))
        return make_span(**fields)


def jsonable(value: Any, scrub: Callable[[str], str] | None = None, _depth: int = 0) -> Any:
    """A JSON-native copy of `value` (str keys, finite floats, capped sizes), strings passed through `scrub`."""
    t = type(value)
    if t is str:
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
        if scrub is not None:
            value = scrub(value)
        return value if len(value) <= MAX_STRING else _cap(value)
    if value is None or t is int or t is bool:
        return value
    if t is float:
        return value if math.isfinite(value) else str(value)
    if _depth >= MAX_DEPTH:
        return "<too deep>"
    d = _depth + 1
    if t is dict or (isinstance(value, Mapping) and t is not str):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out["…"] = f"{len(value) - MAX_ITEMS} more keys"
                break
            key = k if type(k) is str else str(k)
            if scrub is not None and v is not None and v is not True and v is not False and _secret_key(key):
                out[key] = REDACTED
            else:
                out[key] = jsonable(v, scrub, d)
        return out
    if t is list or t is tuple or isinstance(value, (list, tuple, set, frozenset)):
        items = value if t is list else list(value)
        out_list = [jsonable(v, scrub, d) for v in items[:MAX_ITEMS]]
        if len(items) > MAX_ITEMS:
            out_list.append(f"… {len(items) - MAX_ITEMS} more items")
        return out_list
    return _jsonable_other(value, scrub, d)


_secret_keys: dict[str, bool] = {}


def _secret_key(key: str) -> bool:
    """Is `key` a secret-holding field name? Cached: the same few keys come back in every span."""
    hit = _secret_keys.get(key)
    if hit is None:
        if len(_secret_keys) > 10_000:
            _secret_keys.clear()
        hit = _secret_keys[key] = SECRET_KEY.match(key) is not None
    return hit


def _jsonable_other(value: Any, scrub: Callable[[str], str] | None, d: int) -> Any:
    if isinstance(value, (str, int, float)):  # subclasses (str enums, IntEnum, numpy floats…)
        if isinstance(value, Enum):
            return jsonable(value.value, scrub, d)
        base = str if isinstance(value, str) else int if isinstance(value, int) else float
        return jsonable(base(value), scrub, d)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            dumped = dump()
        except Exception:  # noqa: BLE001 - a model that cannot dump itself: fall back to repr below
            dumped = _UNSET
        if dumped is not _UNSET:
            return jsonable(dumped, scrub, d)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable(dataclasses.asdict(value), scrub, d)
    if isinstance(value, Enum):
        return jsonable(value.value, scrub, d)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return jsonable(str(value), scrub, d)
    if isinstance(value, BaseException):
        return jsonable(f"{type(value).__name__}: {value}", scrub, d)
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars
    if callable(tolist):
        try:
            listed = tolist()
        except Exception:  # noqa: BLE001 - not numpy after all: fall back to repr below
            listed = _UNSET
        if listed is not _UNSET:
            return jsonable(listed, scrub, d)
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001
        text = f"<{type(value).__name__}>"
    return jsonable(text, scrub, d)


def _no_nul(text: str) -> str:
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _cap(text: str) -> str:
    if len(text) <= MAX_STRING:
        return text
    return text[:MAX_STRING] + f"…[{len(text) - MAX_STRING} more characters]"
