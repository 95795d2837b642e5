"""Placeholders of reversible redaction: `<EMAIL_ADDRESS_1_qhzvk>` (type, number, the vault's nonce), the `Vault`
that maps them back, and `restore` / `restore_stream`, which put back only the vault's own placeholders.
`without_nonces` and `renonce` let the cache key a masked question and replay a cached answer for another run."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

# A placeholder is `<TYPE_N>` plus, for a vault that restores a model's answer, the vault's nonce:
# `<EMAIL_ADDRESS_1_qhzvk>`. The nonce is random per request, so only placeholders this request issued are
# restored; `<EMAIL_ADDRESS_1>` written by a document or another user stays as it is. Lowercase letters only:
# no recognizer (driver licences, IDs) fires on them, and models copy them as written.
NONCE_LETTERS = "abcdefghijklmnopqrstuvwxyz"
NONCE_LENGTH = 5
PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*?)_(\d+)(?:_([a-z]{4,8}))?>")


def new_nonce() -> str:
    return "".join(secrets.choice(NONCE_LETTERS) for _ in range(NONCE_LENGTH))


def placeholder(entity_type: str, number: int | str, nonce: str = "") -> str:
    """The one spelling of a placeholder: `<EMAIL_ADDRESS_1>`, or `<EMAIL_ADDRESS_1_qhzvk>` with a nonce."""
    return f"<{entity_type}_{number}_{nonce}>" if nonce else f"<{entity_type}_{number}>"


def placeholder_type(text: str) -> str | None:
    """EMAIL_ADDRESS for `<EMAIL_ADDRESS_1>` or `<EMAIL_ADDRESS_1_qhzvk>`; None for anything else."""
    m = PLACEHOLDER.fullmatch(text)
    return m.group(1) if m else None


def without_nonces(text: str) -> str:
    """`<EMAIL_ADDRESS_1_qhzvk>` as `<EMAIL_ADDRESS_1>`: a masked text the same whichever run masked it (cache keys)."""
    return PLACEHOLDER.sub(lambda m: placeholder(m.group(1), m.group(2)) if m.group(3) else m.group(0), text)


_ESCAPED = re.compile(f"&lt;{PLACEHOLDER.pattern[1:-1]}&gt;")


def renonce(value: Any, old: str, new: str) -> Any:
    """The placeholders issued with nonce `old` given nonce `new` (also HTML-escaped), in a text or in every string
    of a JSON-like value: a cached answer replayed for another run. Any other placeholder stays as written."""
    if not old or not new or old == new:
        return value
    if isinstance(value, str):
        def swap(m: re.Match[str]) -> str:
            if m.group(3) != old:
                return m.group(0)
            return placeholder(m.group(1), m.group(2), new) if m.group(0)[0] == "<" else \
                f"&lt;{m.group(1)}_{m.group(2)}_{new}&gt;"
        return _ESCAPED.sub(swap, PLACEHOLDER.sub(swap, value))
    if isinstance(value, dict):
        return {k: renonce(v, old, new) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(renonce(v, old, new) for v in value)
    return value


class Vault(dict[str, str]):
    """Placeholder -> original value. JSON-serialisable; reuse one vault across the turns of a
    conversation so that the same value keeps the same placeholder.

    `nonce` is part of every placeholder the vault issues (a fresh random one by default; `""` for plain
    `<EMAIL_ADDRESS_1>`, as `pseudonymize` uses). A vault rebuilt from its JSON takes the nonce its keys carry."""

    def __init__(self, *args: Any, nonce: str | None = None, **kwargs: str):
        super().__init__(*args, **kwargs)
        if nonce is None:
            carried = [m.group(3) for m in map(PLACEHOLDER.fullmatch, self) if m and m.group(3)]
            nonce = carried[0] if carried else new_nonce() if not self else ""
        self.nonce = nonce

    def placeholder_for(self, entity_type: str, value: str) -> str:
        for key, known in self.items():
            if known == value and placeholder_type(key) == entity_type:
                return key
        n = 1 + sum(1 for key in self if placeholder_type(key) == entity_type)
        key = placeholder(entity_type, n, self.nonce)
        while key in self:  # a key added by hand with this number
            n += 1
            key = placeholder(entity_type, n, self.nonce)
        self[key] = value
        return key


def remask(text: str, vault: Mapping[str, str]) -> str:
    """The inverse of `restore`: each value the vault holds (as a whole word) back to its placeholder, in one pass,
    longest value first (an answer stored for a later turn to restore)."""
    keys = {value: key for key, value in vault.items() if value}
    if not keys:
        return text
    rx = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(v) for v in sorted(keys, key=len, reverse=True)) + r")(?!\w)")
    return rx.sub(lambda m: keys[m.group(0)], text)


def restore(text: str, vault: Mapping[str, str]) -> str:
    """Put the original values back in place of the vault's own placeholders (also when HTML-escaped,
    `&lt;EMAIL_ADDRESS_1_qhzvk&gt;`), in one pass: a restored value is never read again as a placeholder, and
    placeholder-looking text the vault did not issue stays as written."""
    if not vault:
        return text
    forms: dict[str, str] = {}
    for key, value in vault.items():
        forms[key] = value
        if key.startswith("<") and key.endswith(">"):
            forms[f"&lt;{key[1:-1]}&gt;"] = value
    rx = re.compile("|".join(re.escape(k) for k in sorted(forms, key=len, reverse=True)))
    return rx.sub(lambda m: forms[m.group(0)], text)


def restore_stream(chunks: Iterable[str], vault: dict[str, str]) -> Iterator[str]:
    """`restore` for a streamed answer: holds back a trailing partial placeholder (`<EMAIL_AD`) until
    the next chunk completes it, so a placeholder split across chunks is still restored."""
    pending = ""
    for chunk in chunks:
        pending += chunk
        cut = pending.rfind("<")
        amp = pending.rfind("&lt;")
        cut = max(cut, amp)
        if cut != -1 and ">" not in pending[cut:] and ";" not in pending[cut + 4:] and len(pending) - cut <= 40:
            ready, pending = pending[:cut], pending[cut:]
        else:
            ready, pending = pending, ""
        if ready:
            yield restore(ready, vault)
    if pending:
        yield restore(pending, vault)
