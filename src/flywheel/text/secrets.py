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
from collections.abc import Callable, Iterable, Mapping

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
# Literal prefixes of the shapes above: the combined regex runs only when one occurs (cheap `in` checks).
_KNOWN_TRIGGERS = ("sk-", "AKIA", "ASIA", "ABIA", "ACCA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA", "gh",
                   "github_pat_", "glpat-", "xox", "AIza", "_live_", "_test_", "hf_", "npm_", "SG.", "eyJ")
KNOWN_KEY = re.compile("|".join(f"(?P<{name}>{pattern})" for name, pattern, _ in KNOWN_KEYS))

PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
                         r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|$)")
AWS_KEY_ID = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
# A 40-character base64 token (the shape of an AWS secret access key); see `is_aws_secret`.
AWS_SECRET = re.compile(r"(?<![A-Za-z0-9/+=_-])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=_-])")
BEARER = re.compile(r"(?i:bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*")
URL_PASSWORD = re.compile(r"://(?P<user>[^/\s:@]+):(?P<pw>[^@\s/]+)@")

# Names of secret-holding fields, as they appear in assignments and prose (English and Chinese).
SECRET_NAMES = (r"api[_ .-]?key|apikey|secret(?:[_ .-]?key)?|client[_ .-]?secret|access[_ .-]?key(?:[_ .-]?id)?|"
                r"auth[_ .-]?token|access[_ .-]?token|refresh[_ .-]?token|bearer|token|private[_ .-]?key|"
                r"password|passwd|pwd|passphrase|pass|credentials?|密码|口令|密钥|秘钥|令牌|私钥")
CJK_SECRET_NAMES = "密码|口令|密钥|秘钥|令牌|私钥"
_CJK_ASSIGNED = re.compile(rf"(?:{CJK_SECRET_NAMES})[ \t]*(?:[:=：]|是|为)[ \t]*(?!\[REDACTED\])[\"'`“]?"
                           r"(?P<val>[^\s\"'`”,;，。；)）]{4,200})")
# Prose: "my token is 9f86…", "the API key was: Xk29…", "password = hunter2!" — the value must look random.
PROSE_SECRET = re.compile(r"(?i)(?<![a-z])(?:api[ _-]?key|key|token|secret|password|passcode|passphrase|credentials?)"
                    r"(?:[ \t]+(?:is|was)[ \t]*:?|[ \t]*[:=：])[ \t]*(?!\[REDACTED\])[\"'`]?"
                    r"(?P<val>[A-Za-z0-9+/=_.~!@#$%^&*\-]{8,200})")
_PROSE_TRIGGERS = ("key", "token", "secret", "passw", "passcode", "passphrase", "credential")

# `<keyword> = value`: what may come right before the keyword (lower case). `OPENAI_API_KEY=…`,
# `"client_secret": "…"`, `Authorization: Basic …` all qualify; `max_tokens=5` or `monkey: 3` do not.
_KV_BEFORE = {
    "key": re.compile(r"(?:api|secret|private|access|signing|encryption)[_-]?$"),
    "token": re.compile(r"(?:access|refresh|auth|api|id|session|bearer|secret|csrf|github|slack|hf)[_-]?$"),
}
_LETTER_BEFORE = re.compile(r"[a-z]$")
_KV_TRIGGERS = ("key", "authorization", "passw", "pwd", "secret", "token")
# Matched on the lower-cased text (a case-insensitive alternation is ~5x slower in `re`).
_KV = re.compile(r"(?P<kw>key|authorization|passw(?:or)?d|pwd|secret|token)[\"']?\s*[:=：]\s*[\"']?"
                 r"(?!\[redacted\])(?P<val>(?:(?:bearer|basic|token)\s+)?[^\s\"',;&}\]]+)")
_KV_CI = re.compile(_KV.pattern, re.IGNORECASE)

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
    return AWS_KEY_ID.search(text) is not None or re.search(r"(?i)(?<![a-z])aws(?![a-z])", text) is not None


def _ascii_word_before(text: str, i: int) -> bool:
    """Is text[i] glued to a preceding ASCII letter/digit (`task-…` is not `sk-…`; `密钥是sk-…` is)?"""
    return i > 0 and text[i - 1].isascii() and text[i - 1].isalnum()


def _known(m: re.Match[str]) -> str:
    return m.group(0) if _ascii_word_before(m.string, m.start()) else REDACTED


def _bearer(m: re.Match[str]) -> str:
    return m.group(0) if _ascii_word_before(m.string, m.start()) else REDACTED


def _url_password(m: re.Match[str]) -> str:
    return f"://{m.group('user')}:{REDACTED}@"


def _aws_secret(m: re.Match[str]) -> str:
    return REDACTED if is_aws_secret(m.group(0)) else m.group(0)


def _replace_group(rx: re.Pattern[str], text: str, accept: Callable[[str], bool], group: str = "val") -> str:
    out: list[str] = []
    pos = 0
    for m in rx.finditer(text):
        if not accept(m.group(group)):
            continue
        out.append(text[pos:m.start(group)])
        out.append(REDACTED)
        pos = m.end(group)
    if not out:
        return text
    out.append(text[pos:])
    return "".join(out)


def _scrub_kv(text: str, low: str) -> str:
    """`<secret keyword> = value` → keep the keyword, drop the value."""
    pattern, hay = (_KV, low) if len(low) == len(text) else (_KV_CI, text)  # lower() changed the length
    out: list[str] = []
    pos = 0
    for m in pattern.finditer(hay):
        kw = m.group("kw").lower()
        before = hay[max(0, m.start() - 24):m.start()].lower()
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


_PLACEHOLDER = re.compile(r"(?i)^(?:x+|\*+|<[^>]*>|\{[^}]*\}|\$\{?\w+\}?|your[_-]?\w*|changeme|none|null|"
                          r"true|false|example\w*|placeholder|redacted|\.\.\.|os\.environ.*|env\(.*)$")


def _cjk_value(value: str) -> bool:
    return _PLACEHOLDER.match(value) is None


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
    if any(t in text for t in _KNOWN_TRIGGERS):
        text = KNOWN_KEY.sub(_known, text)
    if aws:
        text = AWS_SECRET.sub(_aws_secret, text)
    low = text.lower()
    if "bearer" in low:
        text = BEARER.sub(_bearer, text)
    if "://" in text and "@" in text:
        text = URL_PASSWORD.sub(_url_password, text)
    low = text.lower()
    if any(t in low for t in _KV_TRIGGERS) and ("=" in text or ":" in text or "：" in text):
        text = _scrub_kv(text, low)
        low = text.lower()
    if any(t in low for t in _PROSE_TRIGGERS):
        text = _replace_group(PROSE_SECRET, text, looks_random)
    if any(name in text for name in ("密码", "口令", "密钥", "秘钥", "令牌", "私钥")):
        text = _replace_group(_CJK_ASSIGNED, text, _cjk_value)
    return text


def secret_env_values(env: Mapping[str, str] | None = None, names: Iterable[str] = ()) -> list[str]:
    """Values of the environment variables that hold secrets: those named like *_API_KEY, *_TOKEN,
    *_SECRET, *PASSWORD … plus `names` (e.g. every `models.*.api_key_env`)."""
    env = os.environ if env is None else env
    wanted = {n for n in env if SECRET_ENV.search(n)} | {n for n in names if n}
    return [env[n] for n in wanted if n in env and len(env[n]) >= MIN_SECRET_VALUE_LEN]


__all__ = ["AWS_SECRET", "CJK_SECRET_NAMES", "KNOWN_KEY", "KNOWN_KEYS", "PRIVATE_KEY", "PROSE_SECRET", "REDACTED", "SECRET_NAMES", "URL_PASSWORD", "aws_context",
           "entropy", "is_aws_secret", "looks_random", "scrub_secrets", "secret_env_values"]
