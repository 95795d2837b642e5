"""The one secret scrubber: every place flywheel stores or shows text (spans, cache rows, eval rows and
reports, logs, error messages) passes it through `scrub_secrets`, and the `pii` check's SECRET recognizers
are built from the same patterns.

What it replaces with "[REDACTED]":
- provider key shapes (OpenAI `sk-…`/`sk-proj-…`, Anthropic `sk-ant-…`, AWS key ids, GitHub, GitLab, Google
  `AIza…`, Slack `xox…`, Stripe, Hugging Face `hf_…`, npm, SendGrid, JWTs), also glued to CJK text
  (`密钥是sk-…`): only an ASCII letter or digit right before a key makes it part of another word;
- private-key blocks, `Bearer …` tokens, passwords inside URLs (`scheme://user:PASSWORD@host`);
- AWS secret access keys without a label: a 40-character base64 token with mixed case in a text that also
  holds an AWS key id or mentions AWS;
- values assigned to a secret-named key (`api_key=…`, `"client_secret": "…"`, `Authorization: Basic …`,
  `db_password=…`, `密码：…`, `令牌是…`) and credential-looking values introduced in prose (`my token is
  9f86d08188…`, `the API key was Xk29…`);
- exact values passed in `values` (secret environment variables, see `secret_env_values`).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping

REDACTED = "[REDACTED]"

# (name, pattern, score) — shapes published by each provider, bare (callers add their own token boundaries).
# The score is how sure a match is a credential; the `pii` check reports it.
KNOWN_KEYS: tuple[tuple[str, str, float], ...] = (
    ("anthropic_key", r"sk-ant-[A-Za-z0-9_-]{20,}", 0.99),
    ("openai_key", r"sk-(?:proj-|svcacct-|admin-|or-)?[A-Za-z0-9_-]{20,}", 0.9),
    ("aws_access_key", r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}(?![A-Za-z0-9])", 0.95),
    ("github_token", r"(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})", 0.99),
    ("gitlab_token", r"glpat-[A-Za-z0-9_-]{20,}", 0.99),
    ("slack_token", r"xox[abposr]-[A-Za-z0-9-]{10,}", 0.95),
    ("google_api_key", r"AIza[0-9A-Za-z_-]{35}", 0.95),
    ("stripe_key", r"(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}", 0.95),
    ("huggingface_token", r"hf_[A-Za-z0-9]{30,}", 0.95),
    ("npm_token", r"npm_[A-Za-z0-9]{36}", 0.95),
    ("sendgrid_key", r"SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}", 0.95),
    ("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", 0.9),
)
# Literal prefixes the shapes above start with: the regex is tried only where one occurs (`str.find` is
# ~100x faster than letting `re` try an alternation at every position of a long document).
_KNOWN_ANCHORS = ("sk-", "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA", "ghp_",
                  "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox", "AIza", "sk_live_", "sk_test_",
                  "rk_live_", "rk_test_", "pk_live_", "pk_test_", "hf_", "npm_", "SG.", "eyJ")
KNOWN_KEY = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern, _ in KNOWN_KEYS))

PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
                         r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)")
AWS_KEY_ID = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
# A 40-character base64 token (the shape of an AWS secret access key); see `is_aws_secret`.
AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=_-])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=_-])")
_BASE64_RUN = re.compile(r"[A-Za-z0-9/+]{40,}")  # starts with a character class: `re` scans for it quickly
BEARER = re.compile(r"(?i:bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*")
URL_PASSWORD = re.compile(r"://(?P<user>[^/\s:@]*):(?P<pw>[^@\s/]+)@")

# Names of secret-holding fields, as they appear in assignments and prose (English and Chinese).
SECRET_NAMES = (r"api[_ .-]?key|apikey|secret(?:[_ .-]?key)?|client[_ .-]?secret|access[_ .-]?key(?:[_ .-]?id)?|"
                r"auth[_ .-]?token|access[_ .-]?token|refresh[_ .-]?token|bearer|token|private[_ .-]?key|"
                r"password|passwd|pwd|passphrase|pass|credentials?|密码|口令|密钥|秘钥|令牌|私钥")
CJK_SECRET_NAMES = "密码|口令|密钥|秘钥|令牌|私钥"
# `密码：x`, `密钥是 x`, or `密码 x` with a space when the value holds a digit or a symbol (`密码 错误` stays)
_CJK_ASSIGNED = re.compile(rf"(?:{CJK_SECRET_NAMES})" r"(?:[ \t]*(?:[:=：]|是|为)[ \t]*|[ \t]+(?=[!-~]*[0-9!-/:-@\[-`{-~]))"
                           r"(?!\[REDACTED\])[\"'`“]?(?P<val>[^\s\"'`”,;，。；)）]{4,200})")
# Prose: "my token is 9f86…", "the API key was: Xk29…", "password = hunter2!" — the value must look random.
PROSE_SECRET = re.compile(r"(?i)(?<![a-z])(?:api[ _-]?key|key|token|secret|password|passcode|passphrase|credentials?)"
                    r"(?:[ \t]+(?:is|was)[ \t]*:?|[ \t]*[:=：])[ \t]*(?!\[REDACTED\])[\"'`]?"
                    r"(?P<val>[A-Za-z0-9+/=_.~!@#$%^&*\-]{8,200})")
_PROSE_ANCHORS = ("api", "key", "token", "secret", "password", "passcode", "passphrase", "credential")
_CJK_ANCHORS = ("密码", "口令", "密钥", "秘钥", "令牌", "私钥")

# `<keyword> = value`: what may come right before the keyword (lower case). `OPENAI_API_KEY=…`,
# `"client_secret": "…"`, `Authorization: Basic …` all qualify; `max_tokens=5` or `monkey: 3` do not.
_KV_BEFORE = {
    "key": re.compile(r"(?:api|secret|private|access|signing|encryption)[_-]?$"),
    "token": re.compile(r"(?:access|refresh|auth|api|id|session|bearer|secret|csrf|github|slack|hf)[_-]?$"),
}
_LETTER_BEFORE = re.compile(r"[a-z]$")
_KV_ANCHORS = ("key", "authorization", "passw", "pwd", "secret", "token")
# Matched on the lower-cased text (a case-insensitive alternation is ~5x slower in `re`).
_KV = re.compile(r"(?P<kw>key|authorization|passw(?:or)?d|pwd|secret|token)[\"']?\s*[:=：]\s*[\"']?"
                 r"(?!\[redacted\])(?P<val>(?:(?:bearer|basic|token)\s+)?[^\s\"',;&}\]]+)")
_KV_CI = re.compile(_KV.pattern, re.IGNORECASE)
_SCHEME = re.compile(r"(?i)^(?:bearer|basic|token)\s+")

# Environment variables whose values are secrets (their exact values are scrubbed wherever they appear).
SECRET_ENV = re.compile(r"(?i)(?:API_?KEY|TOKEN|SECRET|SECRET_KEY|PASSWORD|PASSWD|CREDENTIALS?|PRIVATE_KEY)$")
MIN_SECRET_VALUE_LEN = 8  # shorter values are too likely to be ordinary words


def entropy(token: str) -> float:
    """Shannon entropy in bits per character."""
    n = len(token)
    return -sum(c / n * math.log2(c / n) for c in Counter(token).values()) if n else 0.0


def looks_random(token: str, min_len: int = 8) -> bool:
    """A credential-like value: long enough, letters and digits (or a long run of hex/digits), not a word."""
    if len(token) < min_len:
        return False
    letters = any(c.isalpha() for c in token)
    digits = any(c.isdigit() for c in token)
    if letters and digits:
        return entropy(token) >= 2.5
    return len(token) >= 16 and entropy(token) >= 3.0  # all-letter or all-digit: only long random runs


def is_aws_secret(token: str) -> bool:
    """A 40-character base64 token shaped like an AWS secret key: upper, lower and a digit or `/`/`+`
    (git SHA-1s are lower-case hex and never qualify)."""
    return (len(token) == 40 and any(c.isupper() for c in token) and any(c.islower() for c in token)
            and any(c.isdigit() or c in "/+" for c in token))


def aws_context(text: str) -> bool:
    """Does the text hold an AWS key id or mention AWS (then unlabelled 40-character secrets are scrubbed)?"""
    if any(True for _ in _anchored(AWS_KEY_ID, text, ("AKIA", "ASIA"))):
        return True
    low = text.lower()
    i = low.find("aws")
    while i >= 0:
        if not (i > 0 and low[i - 1].isascii() and low[i - 1].isalpha()) and not low[i + 3:i + 4].isalpha():
            return True
        i = low.find("aws", i + 3)
    return False


def _anchored(rx: re.Pattern[str], hay: str, anchors: Iterable[str]) -> Iterator[re.Match[str]]:
    """Non-overlapping matches of `rx` that start where one of `anchors` occurs in `hay`, left to right."""
    starts: set[int] = set()
    for anchor in anchors:
        i = hay.find(anchor)
        while i >= 0:
            starts.add(i)
            i = hay.find(anchor, i + 1)
    end = 0
    for i in sorted(starts):
        if i < end:
            continue
        m = rx.match(hay, i)
        if m is not None:
            end = max(m.end(), i + 1)
            yield m


def _replace(text: str, spans: Iterable[tuple[int, int]]) -> str:
    """`text` with each (start, end) span, in order and not overlapping, replaced by REDACTED."""
    out: list[str] = []
    pos = 0
    for start, end in spans:
        out.append(text[pos:start])
        out.append(REDACTED)
        pos = end
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _ascii_word_before(text: str, i: int) -> bool:
    """Is text[i] glued to a preceding ASCII letter/digit (`task-…` is not `sk-…`; `密钥是sk-…` is)?"""
    return i > 0 and text[i - 1].isascii() and text[i - 1].isalnum()


def _known_spans(text: str) -> Iterator[tuple[int, int]]:
    for m in _anchored(KNOWN_KEY, text, _KNOWN_ANCHORS):
        if not _ascii_word_before(text, m.start()):
            yield m.span()


def _aws_spans(text: str) -> Iterator[tuple[int, int]]:
    for m in _BASE64_RUN.finditer(text):
        s, e = m.span()
        if (e - s == 40 and (s == 0 or text[s - 1] not in "=_-") and text[e:e + 1] not in ("=", "_", "-")
                and is_aws_secret(m.group(0))):
            yield s, e


def _at_keywords(rx: re.Pattern[str], text: str, low: str, keywords: tuple[str, ...]) -> Iterator[re.Match[str]]:
    """Matches of the case-insensitive `rx` on `text` starting where a lower-case keyword occurs in `low`,
    not overlapping (every position when lower() changed the text's length: positions would not line up)."""
    if len(low) != len(text):
        yield from rx.finditer(text)
        return
    end = 0
    for anchor in _anchored(_ANY, low, keywords):
        i = anchor.start()
        if i < end:
            continue
        m = rx.match(text, i)
        if m is not None:
            end = max(m.end(), i + 1)
            yield m


_ANY = re.compile("")  # `_anchored` with it yields every anchor position


def _bearer_spans(text: str, low: str) -> Iterator[tuple[int, int]]:
    for m in _at_keywords(BEARER, text, low, ("bearer",)):
        if not _ascii_word_before(text, m.start()):
            yield m.span()


def _url_spans(text: str) -> Iterator[tuple[int, int]]:
    for m in URL_PASSWORD.finditer(text):
        if _PLACEHOLDER.match(m.group("pw")) is None:
            yield m.span("pw")


def _kv_spans(text: str, low: str) -> Iterator[tuple[int, int]]:
    """`<secret keyword> = value` → the value (the keyword stays)."""
    if len(low) == len(text):
        matches: Iterable[re.Match[str]] = _anchored(_KV, low, _KV_ANCHORS)
        hay = low
    else:  # lower() changed the length (rare Unicode): positions must line up, match case-insensitively
        matches, hay = _KV_CI.finditer(text), text
    for m in matches:
        kw = m.group("kw").lower()
        before = hay[max(0, m.start() - 24):m.start()].lower()
        rule = _KV_BEFORE.get(kw)
        if rule is not None and not rule.search(before):
            continue
        if rule is None and _LETTER_BEFORE.search(before) and not text[m.start():m.end("kw")].isupper():
            continue  # `passwords: 3` is fine, `db_password=x` and `PGPASSWORD=x` are not
        value = _SCHEME.sub("", hay[m.start("val"):m.end()]).strip("\"'`)")
        if _PLACEHOLDER.match(value) is None:
            yield m.start("val"), m.end()


def _prose_spans(text: str, low: str) -> Iterator[tuple[int, int]]:
    for m in _at_keywords(PROSE_SECRET, text, low, _PROSE_ANCHORS):
        if looks_random(m.group("val")):
            yield m.span("val")


# Values that stand for a secret rather than being one: examples in docs and config templates, variable
# references, elisions (`…`). Never scrubbed: they are not credentials.
_PLACEHOLDER = re.compile(r"(?i)^(?:x+|\*+|<[^>]*>?|\{[^}]*\}?|\$\{?\w+\}?|your[\w-]*|changeme|none|null|true|false|"
                          r"example\w*|placeholder|redacted|password|passwd|pass|pwd|pw|secret|token|key|"
                          r"os\.environ.*|env\(.*|(?:…|\.\.\.)[`'\")]*)$")


def _cjk_spans(text: str) -> Iterator[tuple[int, int]]:
    for m in _anchored(_CJK_ASSIGNED, text, _CJK_ANCHORS):
        if _PLACEHOLDER.match(m.group("val")) is None:
            yield m.span("val")


def scrub_secrets(text: str, *, values: Iterable[str] = ()) -> str:
    """`text` with every credential replaced by "[REDACTED]" (see the module doc); `values`: exact secret
    values to remove too (longest first, so a generic pattern cannot cut one in half)."""
    if not text:
        return text
    for value in sorted((v for v in values if v and len(v) >= MIN_SECRET_VALUE_LEN), key=len, reverse=True):
        if value in text:
            text = text.replace(value, REDACTED)
    if "PRIVATE KEY" in text:
        text = PRIVATE_KEY.sub(REDACTED, text)
    low = text.lower()
    # Decided before the key id itself is redacted; applied after the known shapes, so a 40-character run
    # inside a longer key cannot be cut out of it (which would leave the rest of that key behind).
    aws = ("aws" in low or "AKIA" in text or "ASIA" in text) and aws_context(text)
    text = _replace(text, _known_spans(text))
    if aws:
        text = _replace(text, _aws_spans(text))
    low = text.lower()
    if "bearer" in low:
        text = _replace(text, _bearer_spans(text, low))
    if "://" in text and "@" in text:
        text = _replace(text, _url_spans(text))
    low = text.lower()
    if "=" in text or ":" in text or "：" in text:
        text = _replace(text, _kv_spans(text, low))
        low = text.lower()
    text = _replace(text, _prose_spans(text, low))
    if any(name in text for name in _CJK_ANCHORS):
        text = _replace(text, _cjk_spans(text))
    return text


def secret_env_values(env: Mapping[str, str] | None = None, names: Iterable[str] = ()) -> list[str]:
    """Values of the environment variables that hold secrets: those named like *_API_KEY, *_TOKEN,
    *_SECRET, *PASSWORD … plus `names` (e.g. every `models.*.api_key_env`)."""
    env = os.environ if env is None else env
    wanted = {n for n in env if SECRET_ENV.search(n)} | {n for n in names if n}
    return [env[n] for n in wanted if n in env and len(env[n]) >= MIN_SECRET_VALUE_LEN]


__all__ = ["AWS_SECRET", "CJK_SECRET_NAMES", "KNOWN_KEY", "KNOWN_KEYS", "PRIVATE_KEY", "PROSE_SECRET", "REDACTED",
           "SECRET_NAMES", "URL_PASSWORD", "aws_context", "entropy", "is_aws_secret", "looks_random",
           "scrub_secrets", "secret_env_values"]
