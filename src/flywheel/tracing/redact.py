"""Secrets never reach stored or exported spans: scrub them, and make every value plain JSON, in one pass.

`Redactor.clean(value)` walks inputs/outputs/attributes/errors recursively (dicts, lists, pydantic models,
dataclasses, numpy values …) and returns JSON-native data where
- strings go through the one secret scrubber, `flywheel.text.scrub_secrets` (key shapes, tokens, private keys,
  URL passwords, `api_key=…` values, "my token is …"), after the exact values of secret environment variables
  (those named by `models.*.api_key_env` and any variable called *_API_KEY, *_TOKEN, *_SECRET, *PASSWORD …);
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
from typing import Any

from flywheel.errors import ConfigError
from flywheel.protocols import Masker
from flywheel.text.secrets import MIN_SECRET_VALUE_LEN, REDACTED, scrub_secrets, secret_env_values
from flywheel.types import Span

__all__ = ["REDACTED", "SECRET_KEY", "Redactor", "jsonable"]

MAX_STRING = 20_000  # characters kept per string
MAX_ITEMS = 1_000  # items kept per list / dict
MAX_DEPTH = 24

_KEYWORDS = (r"api[_-]?key|apikey|x-api-key|x-goog-api-key|authorization|proxy-authorization|password|passwd|pwd"
             r"|secret|client[_-]?secret|secret[_-]?key|private[_-]?key|aws_secret_access_key"
             r"|(?:access|refresh|auth|api|id|session|bearer)[_-]?token")
# A dict key whose value is a secret, whatever the value looks like.
SECRET_KEY = re.compile(rf"(?i)^(?:.*[_.-])?(?:{_KEYWORDS}|cookie|set-cookie)$")

_UNSET = object()
_CACHE_MAX_LEN = 128
_CACHE_SIZE = 4096


class Redactor:
    """Scrubs secrets and converts values to storable JSON. Call it on a Span (the `tracer.redactor` API)."""

    def __init__(self, extra_patterns: Iterable[str] = (), secret_values: Iterable[str] = (), *,
                 capture_content: bool = True, pii: bool | Iterable[str] = False, masker: Masker | None = None):
        self._extra: list[re.Pattern] = []
        for i, pat in enumerate(extra_patterns):
            try:
                self._extra.append(re.compile(pat))
            except re.error as exc:
                raise ConfigError(f"`tracing.redact[{i}]` is not a valid regular expression: {exc}",
                                  hint="fix the pattern (Python `re` syntax) in flywheel.yaml") from None
        # Exact secret values first (longest first): a generic pattern could otherwise cut one in half.
        self._values = sorted({v for v in secret_values if v and len(v) >= MIN_SECRET_VALUE_LEN}, key=len,
                              reverse=True)
        self.capture_content = capture_content
        self._cache: dict[str, str] = {}
        # PII masking before storage: `masker` is injected (the detectors live in checks/, a sibling room);
        # `pii` says it was asked for, so a missing masker is a configuration error, not silent plain text.
        self._pii = pii if isinstance(pii, bool) else list(pii)
        self._mask_pii: Masker | None = masker
        if self._pii is not False and masker is None:
            raise ConfigError("`tracing.redact_pii` is on, but no PII masker was given to the tracer",
                              hint="open the project with flywheel's Runtime (it wires the PII detector in), or "
                                   "pass masker= to attach_store / Redactor")

    @classmethod
    def from_config(cls, tracing: Any = None, models: Mapping[str, Any] | None = None,
                    env: Mapping[str, str] | None = None, masker: Masker | None = None) -> Redactor:
        """From `tracing:` (TracingConfig: redact, capture_content) and `models:` (their api_key_env values)."""
        names = [getattr(alias, "api_key_env", None) or "" for alias in (models or {}).values()]
        values = secret_env_values(os.environ if env is None else env, names)
        return cls(getattr(tracing, "redact", None) or (), values,
                   capture_content=getattr(tracing, "capture_content", True),
                   pii=getattr(tracing, "redact_pii", False), masker=masker)

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
        text = scrub_secrets(text)
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
