"""Recognizers for credentials: provider API keys with known shapes, private keys, JWTs, and generic
high-entropy values assigned to a key-like name (`api_key = "…"`, `token: …`, `密码：…`).

All report the entity type SECRET; the recognizer name says which kind it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from flywheel.checks import pii_validators as v
from flywheel.checks.pii_recognizers import PiiEntity, Recognizer

_T = r"(?![A-Za-z0-9_-])"  # end of a token
_S = r"(?<![A-Za-z0-9_-])"  # start of a token

# (name, pattern, score) — shapes published by each provider; all are long and prefixed, so precise.
_KNOWN = [
    ("anthropic_key", r"sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_-]{20,}", 0.99),
    ("openai_key", r"sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}", 0.9),
    ("aws_access_key", r"(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}", 0.95),
    ("github_token", r"(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})", 0.99),
    ("gitlab_token", r"glpat-[A-Za-z0-9_-]{20,}", 0.99),
    ("slack_token", r"xox[abposr]-[A-Za-z0-9-]{10,}", 0.95),
    ("google_api_key", r"AIza[0-9A-Za-z_-]{35}", 0.95),
    ("stripe_key", r"(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}", 0.95),
    ("huggingface_token", r"hf_[A-Za-z0-9]{30,}", 0.95),
    ("npm_token", r"npm_[A-Za-z0-9]{36}", 0.95),
    ("sendgrid_key", r"SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}", 0.95),
    ("jwt", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", 0.9),
]

_PRIVATE_KEY = re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]{16,8192}?"
                          r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")

# A key-like name, then `=`, `:`, `=>` or a Chinese "is", then the value (quoted or bare).
_NAMES = (r"api[_ .-]?key|apikey|secret(?:[_ .-]?key)?|client[_ .-]?secret|access[_ .-]?key(?:[_ .-]?id)?|"
          r"auth[_ .-]?token|access[_ .-]?token|refresh[_ .-]?token|bearer|token|private[_ .-]?key|"
          r"password|passwd|pwd|passphrase|pass|credentials?|密码|口令|密钥|秘钥|令牌|私钥")
_ASSIGNED = re.compile(
    r"(?i)(?=[apsctrbk密口令秘私])(?P<name>" + _NAMES + r")[\w.-]{0,20}[\"']?[ \t]*(?::|=>|=|：|是|为)[ \t]*(?:bearer[ \t]+)?"
    r"(?P<q>[\"'`]?)(?P<value>[^\s\"'`,;，。；)]{6,200})(?P=q)")
_AUTH_HEADER = re.compile(r"(?i)\bauthorization:[ \t]*(?:bearer|basic|token)[ \t]+(?P<value>[A-Za-z0-9._~+/=-]{12,})")
_PASSWORD_NAMES = ("password", "passwd", "pwd", "passphrase", "pass", "密码", "口令")
_PLACEHOLDER = re.compile(r"(?i)^(?:x+|\*+|<[^>]*>|\{[^}]*\}|\$\{?[\w]+\}?|your[_-]?\w*|changeme|none|null|"
                          r"true|false|example\w*|placeholder|redacted|\.\.\.|os\.environ.*|env\(.*)$")


def _assigned(m: re.Match[str], text: str) -> float | None:
    value = m.group("value")
    if _PLACEHOLDER.match(value) or value.startswith("<") and value.endswith(">"):
        return None
    name = m.group("name").lower()
    if name in _PASSWORD_NAMES:
        # passwords may be short words, but prose ("the password is stored in …") must not match
        return 0.75 if (any(c.isdigit() for c in value) or any(not c.isalnum() for c in value)
                        or m.group("q")) else None
    return 0.8 if v.looks_random(value, min_len=12, min_entropy=3.0) else None


class KnownKeyRecognizer(Recognizer):
    """All provider key shapes in one alternation (one pass over the text instead of one per provider);
    the named group that matched says which provider."""

    def __init__(self) -> None:
        alternatives = "|".join(f"(?P<{name}>{pattern})" for name, pattern, _ in _KNOWN)
        super().__init__("SECRET", "known_key", _S + r"(?=[sAaghxpreSnj])(?:" + alternatives + ")" + _T,
                         lambda m, t: _SCORES[m.lastgroup or ""])

    def find(self, text: str) -> Iterator[PiiEntity]:
        for m in self.pattern.finditer(text):
            name = m.lastgroup or self.name
            yield PiiEntity("SECRET", m.start(), m.end(), _SCORES.get(name, 0.9), m.group(0), name)


_SCORES = {name: score for name, _, score in _KNOWN}


def secret_recognizers() -> list[Recognizer]:
    out: list[Recognizer] = [KnownKeyRecognizer()]
    out.append(Recognizer("SECRET", "private_key", _PRIVATE_KEY, lambda m, t: 0.99))
    out.append(Recognizer("SECRET", "assigned_secret", _ASSIGNED, _assigned, group="value"))
    out.append(Recognizer("SECRET", "authorization_header", _AUTH_HEADER, lambda m, t: 0.9, group="value"))
    return out
