"""Conversation memory of chat apps: the turns of a session, kept in the store (so every server worker sees
the same conversation), scoped by tenant and app.

    memory = ConversationMemory(store, max_turns=10, token_budget=2000)
    memory.append("acme", "support", "s-42", "Hi, I'm Ann.", "Hello Ann!", trace_id=...)
    memory.history("acme", "support", "s-42")   # [Message(user), Message(assistant), …], oldest first

Bounded: the prompt gets at most the last `max_turns` exchanges, and of those only the newest that fit in
`token_budget` (estimated tokens, about four characters each); older turns are dropped from the prompt, not
summarised. The store keeps the last `keep_turns` exchanges of a session (older rows are deleted as new ones
arrive). A session id sent by another tenant (or to another app) finds no turns: it starts empty.

What is stored is what the model saw: the user's message after the input guards (masked where a redact guard
is configured) and the answer with credentials scrubbed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from flywheel.errors import UserError
from flywheel.gateway.providers.base import estimate_tokens
from flywheel.text.secrets import scrub_secrets
from flywheel.types import Message

MAX_SESSION_ID = 200


@dataclass(frozen=True)
class Turn:
    user: str
    answer: str
    trace_id: str | None = None


def validate_session_id(session_id: str | None) -> str | None:
    """None stays None (no memory); otherwise a non-empty printable id of at most 200 characters."""
    if session_id is None:
        return None
    value = str(session_id).strip()
    if not value or len(value) > MAX_SESSION_ID or not value.isprintable():
        raise UserError(f"invalid session id {str(session_id)[:40]!r}",
                        hint=f"a session id is 1-{MAX_SESSION_ID} printable characters, e.g. `s-42`")
    return value


class ConversationMemory:
    """`store`: a Store, or a function returning one (opened on the first turn with a session)."""

    def __init__(self, store: Any, *, max_turns: int = 10, token_budget: int = 2000, keep_turns: int | None = None):
        if max_turns < 1 or token_budget < 1:
            raise UserError("memory needs max_turns >= 1 and token_budget >= 1")
        self._store, self.max_turns, self.token_budget = store, max_turns, token_budget
        self.keep_turns = max(keep_turns or 0, max_turns)

    @property
    def store(self) -> Any:
        if callable(self._store):
            self._store = self._store()
        return self._store

    @property
    def _table(self) -> Any:
        from flywheel.store.schema_sessions import chat_turns

        return chat_turns

    def turns(self, tenant: str, app: str, session_id: str, limit: int | None = None) -> list[Turn]:
        """The session's stored turns, oldest first (the newest `limit` when given)."""
        from sqlalchemy import select

        t = self._table
        q = (select(t.c.user_text, t.c.answer, t.c.trace_id)
             .where(t.c.tenant == tenant, t.c.app == app, t.c.session_id == session_id)
             .order_by(t.c.id.desc()).limit(limit or self.keep_turns))
        with self.store.connect() as conn:
            rows = list(conn.execute(q))
        return [Turn(r.user_text, r.answer, r.trace_id) for r in reversed(rows)]

    def history(self, tenant: str, app: str, session_id: str) -> list[Message]:
        """The messages a new turn is prefixed with: the newest turns within `max_turns` and `token_budget`."""
        kept: list[Turn] = []
        used = 0
        for turn in reversed(self.turns(tenant, app, session_id, self.max_turns)):
            cost = estimate_tokens(turn.user) + estimate_tokens(turn.answer)
            if used + cost > self.token_budget:
                break
            kept.append(turn)
            used += cost
        messages: list[Message] = []
        for turn in reversed(kept):
            messages += [Message(role="user", content=turn.user), Message(role="assistant", content=turn.answer)]
        return messages

    def recent_answers(self, tenant: str, app: str, session_id: str, n: int) -> list[str]:
        return [t.answer for t in self.turns(tenant, app, session_id, n)] if n > 0 else []

    def append(self, tenant: str, app: str, session_id: str, user: str, answer: str,
               trace_id: str | None = None) -> None:
        """Store one exchange and delete the session's turns beyond `keep_turns`, in one transaction."""
        from sqlalchemy import delete, insert, select

        t = self._table
        scope = (t.c.tenant == tenant, t.c.app == app, t.c.session_id == session_id)
        with self.store.begin() as conn:
            conn.execute(insert(t).values(tenant=tenant, app=app, session_id=session_id,
                                          user_text=scrub_secrets(user), answer=scrub_secrets(answer),
                                          trace_id=trace_id, created_at=time.time()))
            keep = select(t.c.id).where(*scope).order_by(t.c.id.desc()).limit(self.keep_turns).subquery()
            conn.execute(delete(t).where(*scope, t.c.id.not_in(select(keep.c.id))))

    def clear(self, tenant: str, app: str, session_id: str) -> int:
        from sqlalchemy import delete

        t = self._table
        with self.store.begin() as conn:
            return int(conn.execute(delete(t).where(t.c.tenant == tenant, t.c.app == app,
                                                    t.c.session_id == session_id)).rowcount or 0)


def avoid_note(answers: list[str]) -> str:
    """The system-prompt addition of `avoid_recent`: the session's last answers, not to be repeated."""
    listed = "\n".join(f"- {' '.join(a.split())[:500]}" for a in answers)
    return f"Do not repeat these earlier answers of yours; say something new:\n{listed}"
