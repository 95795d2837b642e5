"""A fake_llm reply that copies the request's PII placeholders, as a real model does.

Input `redact` guards issue placeholders with a random per-run nonce (`<EMAIL_ADDRESS_1_qhzvk>`), so a canned
reply can't spell them: `copies_placeholders("I will write to {EMAIL_ADDRESS_1} today.")` answers with the
placeholder the request carried (`{EMAIL_ADDRESS_1}` → `<EMAIL_ADDRESS_1_qhzvk>`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from flywheel.checks.pii import PLACEHOLDER


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def copies_placeholders(template: str) -> Callable[[dict], str]:
    def reply(body: dict) -> str:
        sent = "\n".join(_texts(body.get("messages", [])))
        issued = {f"{m.group(1)}_{m.group(2)}": m.group(0) for m in PLACEHOLDER.finditer(sent)}
        return re.sub(r"\{([A-Z][A-Z0-9_]*_\d+)\}", lambda m: issued.get(m.group(1), f"<{m.group(1)}>"), template)

    return reply
