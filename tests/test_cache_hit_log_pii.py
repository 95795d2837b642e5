"""`tracing.redact_pii` covers the cache's hit log: before this fix a project that masks PII in its traces still
wrote the asker's e-mail address in clear into `cache_hits` (the query of every exact or semantic hit), while
the entries keep the question as asked (the contrast rules tell one user's address from another's)."""

from __future__ import annotations

import sqlite3

from flywheel.apps.runtime import Runtime
from flywheel.config import Project

ANN = "ann.lee@example.com"
PROJECT = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
tracing: {{redact_pii: {redact}}}
cache: {{exact: true}}
apps:
  support: {{kind: chat, model: gpt}}
"""


def hit_queries(root) -> list[str]:
    with sqlite3.connect(root / ".flywheel" / "flywheel.db") as conn:
        return [r[0] for r in conn.execute("select query from cache_hits")]


def ask_twice(root, base_url: str, redact: str) -> list[str]:
    (root / "flywheel.yaml").write_text(PROJECT.format(base=base_url, redact=redact), encoding="utf-8")
    with Runtime(Project.load(root)) as rt:
        app = rt.app("support")
        answers = [app.run(f"Where is the invoice for {ANN}?") for _ in range(2)]
    assert [a.cache for a in answers] == ["miss", "exact"]
    return hit_queries(root)


def test_the_hit_log_masks_pii_when_traces_do(tmp_path, llm):
    llm.add(r"invoice", "It was sent on Monday.")
    queries = ask_twice(tmp_path, llm.base_url, "true")
    assert queries == ["Where is the invoice for <EMAIL_ADDRESS>?"]


def test_the_hit_log_keeps_the_question_when_pii_is_not_masked(tmp_path, llm):
    llm.add(r"invoice", "It was sent on Monday.")
    assert ask_twice(tmp_path, llm.base_url, "false") == [f"Where is the invoice for {ANN}?"]
