"""Recognizers for credentials: provider API keys with known shapes, private keys, JWTs, AWS secret keys next to
an AWS key id or mention, generic high-entropy values assigned to a key-like name (`api_key = "…"`, `token: …`,
`密码：…`) or introduced in prose ("my token is 9f86…").

The shapes and names come from `flywheel.text.secrets`, the floor the storage scrubber uses too, so what the
`pii` check reports and what never reaches the store are the same patterns; this module only scores them (a
guard that blocks needs more precision than a scrubber, e.g. `secret_key = 'aaaa…'` is no finding here).
All report the entity type SECRET; the recognizer name says which kind it was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from flywheel.checks import pii_validators as v
from flywheel.checks.pii_recognizers import PiiEntity, Recognizer
from flywheel.text.secrets import (
    AWS_SECRET,
    KNOWN_KEYS,
    PRIVATE_KEY,
    PROSE_SECRET,
    SECRET_NAMES,
    URL_PASSWORD,
    aws_context,
    is_aws_secret,
    looks_random,
)

_T = r"(?![A-Za-z0-9_-])"  # end of a token
_S = r"(?<![A-Za-z0-9_-])"  # start of a token

# A key-like name, then `=`, `:`, `=>` or a Chinese "is", then the value (quoted or bare).
_ASSIGNED = re.compile(
    r"(?i)(?=[apsctrbk密口令秘私])(?P<name>" + SECRET_NAMES + r")[\w.-]{0,20}[\"']?[ \t]*(?::|=>|=|：|是|为)[ \t]*"
    r"(?:bearer[ \t]+)?(?P<q>[\"'`]?)(?P<value>[^\s\"'`,;，。；)]{6,200})(?P=q)")
_AUTH_HEADER = re.compile(r"(?i)\bauthorization:[ \t]*(?:bearer|basic|token)[ \t]+(?P<value>[A-Za-z0-9._~+/=-]{12,})")
_PASSWORD_NAMES = ("password", "passwd", "pwd", "passphrase", "pass", "密码", "口令")
_PLACEHOLDER = re.compile(r"(?i)^(?:x+|\*+|<[^>]*>|\{[^}]*\}|\$\{?[\w]+\}?|your[\w-]*|changeme|none|null|"
                          r"true|false|example\w*|placeholder|redacted|\.\.\.|…|password|passwd|pass|pwd|secret|"
                          r"os\.environ.*|env\(.*)$")


# A word or a CamelCase name ("Required", "SecretManager"): letters that read as words, not as a password.
_WORDS_ONLY = re.compile(r"[A-Z]?[a-z]+(?:[A-Z][a-z]+)*|[A-Z]+")


def _password_like(value: str, quoted: bool = False) -> bool:
    """Passwords may be short, but prose ("the password is stored in …") must not match: a digit or a symbol,
    a quoted value, or mixed-case letters that are not CamelCase words (`VqrpRsYExLuZ`)."""
    if any(c.isdigit() for c in value) or any(not c.isalnum() for c in value) or quoted:
        return True
    return len(value) >= 8 and value.isascii() and _WORDS_ONLY.fullmatch(value) is None


def _assigned(m: re.Match[str], text: str) -> float | None:
    value = m.group("value")
    if _PLACEHOLDER.match(value) or value.startswith("<") and value.endswith(">"):
        return None
    name = m.group("name").lower()
    if name in _PASSWORD_NAMES:
        return 0.75 if _password_like(value, bool(m.group("q"))) else None
    return 0.8 if v.looks_random(value, min_len=12, min_entropy=3.0) else None


# `账号 admin 密码 Xk29!ab`: a Chinese secret name, a space, then the value (no colon). Only ASCII values that
# look like a password (`_password_like`) count, so "密码 错误" or "密码 reset" stay.
_CJK_SPACED = re.compile(r"(?:密码|口令|密钥|秘钥|令牌|私钥)[ \t]+(?P<value>[!-~]{6,128})(?![!-~])")


def _cjk_spaced(m: re.Match[str], text: str) -> float | None:
    value = m.group("value")
    if _PLACEHOLDER.match(value) or not _password_like(value) or not any(c.isalpha() for c in value):
        return None
    return 0.75


def _url_password(m: re.Match[str], text: str) -> float | None:
    return None if _PLACEHOLDER.match(m.group("pw")) else 0.9


_PASSWORD_WORD = re.compile(r"(?i)pass(?:word|code|phrase)")


def _prose(m: re.Match[str], text: str) -> float | None:
    value = m.group("val")
    if _PLACEHOLDER.match(value):
        return None
    if _PASSWORD_WORD.match(m.group(0)):  # "my password is Xk29@abc": a password needs no random look,
        word = value.rstrip(".,;:!?")  # but a digit or random-looking letters ("is incorrect!" is prose)
        letters = re.sub(r"[^A-Za-z]", "", word)
        random_ish = any(c.isdigit() for c in word) or _password_like(letters)
        return 0.75 if len(word) >= 8 and letters and random_ish else None
    return 0.75 if looks_random(value, min_len=12) else None


class KnownKeyRecognizer(Recognizer):
    """All provider key shapes in one alternation (one pass over the text instead of one per provider);
    the named group that matched says which provider."""

    def __init__(self) -> None:
        alternatives = "|".join(f"(?P<{name}>{pattern})" for name, pattern, _ in KNOWN_KEYS)
        super().__init__("SECRET", "known_key", _S + r"(?=[sAaghxpreSnj])(?:" + alternatives + ")" + _T,
                         lambda m, t: _SCORES[m.lastgroup or ""])

    def find(self, text: str) -> Iterator[PiiEntity]:
        for m in self.pattern.finditer(text):
            name = m.lastgroup or self.name
            yield PiiEntity("SECRET", m.start(), m.end(), _SCORES.get(name, 0.9), m.group(0), name)


class AwsSecretRecognizer(Recognizer):
    """An unlabelled AWS secret access key: only in a text that holds an AWS key id or mentions AWS."""

    def __init__(self) -> None:
        super().__init__("SECRET", "aws_secret_key", AWS_SECRET, lambda m, t: 0.85)

    def find(self, text: str) -> Iterator[PiiEntity]:
        if not aws_context(text):
            return
        for m in self.pattern.finditer(text):
            if is_aws_secret(m.group(0)):
                yield PiiEntity("SECRET", m.start(), m.end(), 0.85, m.group(0), self.name)


_SCORES = {name: score for name, _, score in KNOWN_KEYS}


def secret_recognizers() -> list[Recognizer]:
    out: list[Recognizer] = [KnownKeyRecognizer(), AwsSecretRecognizer()]
    out.append(Recognizer("SECRET", "private_key", PRIVATE_KEY, lambda m, t: 0.99))
    out.append(Recognizer("SECRET", "assigned_secret", _ASSIGNED, _assigned, group="value"))
    out.append(Recognizer("SECRET", "stated_secret", PROSE_SECRET, _prose, group="val"))
    out.append(Recognizer("SECRET", "stated_secret_zh", _CJK_SPACED, _cjk_spaced, group="value"))
    out.append(Recognizer("SECRET", "url_password", URL_PASSWORD, _url_password, group="pw"))
    out.append(Recognizer("SECRET", "authorization_header", _AUTH_HEADER, lambda m, t: 0.9, group="value"))
    return out
