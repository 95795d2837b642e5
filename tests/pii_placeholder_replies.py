"""A fake_llm reply that copies the request's PII placeholders, as a real model does.

`redacting_chat_project` writes the chat app these tests run. Input `redact` guards issue placeholders with a random per-run nonce (`<EMAIL_ADDRESS_1_qhzvk>`), so a canned
reply can't spell them: `copies_placeholders("I will write to {EMAIL_ADDRESS_1} today.")` answers with the
placeholder the request carried (`{EMAIL_ADDRESS_1}` → `<EMAIL_ADDRESS_1_qhzvk>`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flywheel.checks.pii import PLACEHOLDER
from flywheel.config import Project

REDACTING_CHAT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
{cache}
apps:
  support:
    kind: chat
    model: gpt
    guards:
      input:
        - {{check: pii, on_fail: redact}}
{output}"""


def redacting_chat_project(root: Path, base_url: str, *, cache: str = "", output_redact: bool = False) -> Project:
    """A project whose chat app `support` redacts PII on input (and on output with `output_redact`)."""
    output = "      output:\n        - {check: pii, on_fail: redact}\n" if output_redact else ""
    (root / "flywheel.yaml").write_text(REDACTING_CHAT.format(base=base_url, cache=cache, output=output),
                                        encoding="utf-8")
    return Project.load(root)


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
