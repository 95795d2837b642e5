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

Session vaults: the values a redact guard masked in a session's turns stay in this process (`SessionVaults`,
never in the store), so a later answer that repeats an earlier turn's placeholder shows the user's value again.
One vault per session: one nonce, and the same value keeps the same placeholder in every turn. Bounded: the
newest `max_sessions` sessions (LRU), each forgotten `ttl_s` seconds after its last turn. Another worker, or
this one after a restart or an eviction, starts a new vault: the earlier values then stay masked. Workers that
share state share the vaults instead, encrypted (flywheel.apps.session_vaults): in Redis, or, with a vault key
(`flywheel serve --workers N` gives its workers one) and no Redis, in the store.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from flywheel.checks.pii import Vault
from flywheel.errors import UserError
from flywheel.gateway.providers.base import estimate_tokens
from flywheel.text.secrets import scrub_secrets
from flywheel.types import Message

MAX_SESSION_ID = 200
MAX_SESSION_VAULTS = 10_000
SESSION_VAULT_TTL_S = 24 * 3600.0


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


class SessionVault(Vault):
    """The placeholders of one session. Turns of the session may run at once (threads), so a new placeholder is
    numbered under a lock and a turn restores from its own `turn()` copy, never from this shared dict."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    def placeholder_for(self, entity_type: str, value: str) -> str:
        with self.lock:
            return super().placeholder_for(entity_type, value)

    def turn(self) -> TurnVault:
        with self.lock:
            return TurnVault(self)


class TurnVault(Vault):
    """One turn's vault: the session's placeholders so far plus those this turn issues (numbered by the session,
    so concurrent turns never give two values one placeholder)."""

    def __init__(self, session: SessionVault):
        super().__init__(dict(session), nonce=session.nonce)
        self.session = session

    def placeholder_for(self, entity_type: str, value: str) -> str:
        key = self.session.placeholder_for(entity_type, value)
        self[key] = value
        return key


class SessionVaults:
    """Session -> its SessionVault, in process memory: at most `max_sessions` (least recently used go first),
    each dropped `ttl_s` seconds after its last use."""

    def __init__(self, max_sessions: int = MAX_SESSION_VAULTS, ttl_s: float = SESSION_VAULT_TTL_S,
                 clock: Callable[[], float] = time.monotonic):
        if max_sessions < 1 or ttl_s <= 0:
            raise UserError("session vaults need max_sessions >= 1 and ttl_s > 0")
        self.max_sessions, self.ttl_s, self.clock = max_sessions, ttl_s, clock
        self._vaults: OrderedDict[tuple[str, ...], tuple[SessionVault, float]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._vaults)

    def get(self, *key: str) -> SessionVault:
        now = self.clock()
        with self._lock:
            found = self._vaults.pop(key, None)
            vault = found[0] if found is not None and now - found[1] < self.ttl_s else SessionVault()
            self._vaults[key] = (vault, now)
            while self._vaults:  # the oldest entries: expired, or beyond the bound
                oldest, (_, used) = next(iter(self._vaults.items()))
                if len(self._vaults) <= self.max_sessions and now - used < self.ttl_s:
                    break
                del self._vaults[oldest]
            return vault

    def forget(self, *key: str) -> None:
        with self._lock:
            self._vaults.pop(key, None)


class VaultStore(Protocol):
    """Where sessions' vaults live: `SessionVaults` (this process), `session_vaults.RedisSessionVaults` or
    `session_vaults.StoreSessionVaults` (which also has `on_store(store)`: its vaults in that store)."""

    def get(self, *key: str) -> SessionVault: ...

    def forget(self, *key: str) -> None: ...


# One per process: every app object over the same store continues the same sessions (apps are rebuilt per call).
SESSION_VAULTS = SessionVaults()


class ConversationMemory:
    """`store`: a Store, or a function returning one (opened on the first turn with a session). `vaults`: where
    the sessions' redaction vaults live (the process-wide SESSION_VAULTS unless given)."""

    def __init__(self, store: Any, *, max_turns: int = 10, token_budget: int = 2000, keep_turns: int | None = None,
                 vaults: VaultStore | None = None):
        if max_turns < 1 or token_budget < 1:
            raise UserError("memory needs max_turns >= 1 and token_budget >= 1")
        self._store, self.max_turns, self.token_budget = store, max_turns, token_budget
        self.keep_turns = max(keep_turns or 0, max_turns)
        self.vaults: VaultStore = vaults if vaults is not None else SESSION_VAULTS

    def vault(self, tenant: str, app: str, session_id: str) -> SessionVault:
        """The session's redaction vault (keyed by store too, so two projects never share)."""
        return self._vaults().get(self._where(), tenant, app, session_id)

    def _vaults(self) -> VaultStore:
        """The vaults, bound to this memory's store when they live in a store."""
        on_store = getattr(self.vaults, "on_store", None)
        return on_store(self.store) if on_store is not None else self.vaults

    def _where(self) -> str:
        return str(getattr(self.store, "url", id(self.store)))

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
        self._vaults().forget(self._where(), tenant, app, session_id)
        with self.store.begin() as conn:
            return int(conn.execute(delete(t).where(t.c.tenant == tenant, t.c.app == app,
                                                    t.c.session_id == session_id)).rowcount or 0)


def avoid_note(answers: list[str]) -> str:
    """The system-prompt addition of `avoid_recent`: the session's last answers, not to be repeated."""
    listed = "\n".join(f"- {' '.join(a.split())[:500]}" for a in answers)
    return f"Do not repeat these earlier answers of yours; say something new:\n{listed}"
