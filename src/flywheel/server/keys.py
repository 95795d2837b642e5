"""Virtual keys: hashed secrets, tenants, allowed models/apps, budgets and rate limits held in the store.

A key looks like `fw-<key_id>-<secret>`. Only `key_id` (public) and a salted SHA-256 of the secret are stored;
the full key is shown once, by `create`. The secret is 256 random bits, so a fast hash is enough: there is
nothing to brute-force that a slow hash would protect.

Budgets and rate limits are counters behind one interface (server/counters.py): in the store by default,
changed by single atomic UPDATEs whose WHERE clause holds the limit, or in Redis (atomic Lua scripts) when
`server.redis` or a Redis `cache.backend` is set. Both are exact across threads, workers and processes:

- budget: a request is admitted by `reserved += estimate WHERE spent + reserved < budget AND spent + reserved +
  estimate <= budget`; when it ends, `spent += actual cost, reserved -= estimate`. A request is refused once the
  settled spend reaches the budget (429, `Retry-After` = seconds to the next period for monthly budgets).
- rpm / tpm: one counter per key per minute; admitted by `requests += 1 WHERE requests < rpm AND tokens < tpm`;
  tokens are added when the request ends. Refused → 429 with `Retry-After` = seconds to the next minute.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select, update

from flywheel.config import validate_tenant
from flywheel.errors import UserError
from flywheel.server.counters import (
    Admission,
    Counters,
    CountersDown,
    LimitExceeded,
    Limits,
    StoreCounters,
    month_of,
    seconds_to_next_month,
)
from flywheel.store import Store

__all__ = ["Admission", "CountersDown", "KeyStore", "LimitExceeded", "Limits", "Principal", "month_of",
           "seconds_to_next_month"]

_KEY = re.compile(r"^fw-([0-9a-f]{12})-([A-Za-z0-9_-]{20,100})$")
_NAME = re.compile(r"^[A-Za-z0-9_.@:-]{1,100}$")
PERIODS = ("month", "total")


@dataclass
class Principal:
    """Who is calling: a key, the admin, or anyone (open mode)."""

    name: str
    tenant: str = "default"
    key_id: str | None = None
    models: list[str] | None = None  # None: every alias
    apps: list[str] | None = None  # None: every app
    admin: bool = False
    limited: bool = False  # has a budget or rate limit to check
    limits: Limits | None = None

    def may_use_model(self, alias: str) -> bool:
        return self.models is None or alias in self.models

    def may_use_app(self, app: str) -> bool:
        return self.apps is None or app in self.apps


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


class KeyStore:
    """The `api_keys` and `rate_windows` tables. `clock` is injectable (tests move time, never sleep)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time, cache_s: float = 1.0,
                 counters: Counters | None = None):
        self.store = store
        self.clock = clock
        self.counters: Counters = counters or StoreCounters(store)
        self.keys = store.table("api_keys")
        self.windows = store.table("rate_windows")
        # verified keys are reused for `cache_s` seconds (a store round trip per request cost ~1-2 ms on
        # SQLite): a revocation by another process takes effect within that time, one by this process at once
        self.cache_s = cache_s
        self._verified: dict[str, tuple[float, Principal | None]] = {}
        self.created_here = False  # a key was created through this object (the server then stops being open)

    # ------------------------------------------------------------------ management
    def create(self, name: str, *, tenant: str = "default", models: list[str] | None = None,
               apps: list[str] | None = None, budget_usd: float | None = None, budget_period: str = "month",
               rpm: int | None = None, tpm: int | None = None) -> tuple[str, dict[str, Any]]:
        """Create a key; returns (the key, shown once; its stored row without the hash)."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise UserError(f"invalid key name {name!r}", hint="1-100 characters: letters, digits, _.@:-")
        validate_tenant(tenant)
        if budget_period not in PERIODS:
            raise UserError(f"invalid budget period {budget_period!r}", hint=f"one of {', '.join(PERIODS)}")
        if budget_usd is not None and not (budget_usd >= 0 and math.isfinite(budget_usd)):
            raise UserError(f"invalid budget {budget_usd!r}", hint="a budget is a number of USD ≥ 0")
        for label, limit in (("rpm", rpm), ("tpm", tpm)):
            if limit is not None and limit < 1:
                raise UserError(f"invalid {label} {limit!r}", hint=f"{label} is a whole number ≥ 1")
        if any(r["name"] == name for r in self.list()):
            raise UserError(f"an active key named {name!r} exists", hint=f"revoke it first: flywheel keys revoke {name}")
        key_id, secret, salt = secrets.token_hex(6), secrets.token_urlsafe(32), secrets.token_hex(16)
        now = self.clock()
        row = {"key_id": key_id, "name": name, "tenant": tenant, "salt": salt, "hash": _hash(salt, secret),
               "models": models or None, "apps": apps or None, "budget_usd": budget_usd,
               "budget_period": budget_period if budget_usd is not None else None,
               "period": month_of(now) if budget_period == "month" else "total",
               "spent_usd": 0.0, "reserved_usd": 0.0, "rpm": rpm, "tpm": tpm, "created_at": now, "revoked_at": None}
        with self.store.begin() as conn:
            conn.execute(self.keys.insert().values(**row))
        self.created_here = True
        return f"fw-{key_id}-{secret}", _public(row)

    def list(self, *, include_revoked: bool = False) -> list[dict[str, Any]]:
        query = select(self.keys).order_by(self.keys.c.created_at)
        if not include_revoked:
            query = query.where(self.keys.c.revoked_at.is_(None))
        with self.store.connect() as conn:
            return [_public(dict(r)) for r in conn.execute(query).mappings()]

    def revoke(self, name_or_id: str) -> int:
        """Revoke the active key with this name or key id; returns how many were revoked (0 or 1)."""
        self._verified.clear()
        c = self.keys.c
        with self.store.begin() as conn:
            res = conn.execute(update(self.keys).where(
                c.revoked_at.is_(None), or_(c.name == name_or_id, c.key_id == name_or_id)
            ).values(revoked_at=self.clock()))
        return res.rowcount

    def any_active(self, *, include_revoked: bool = False) -> bool:
        query = select(self.keys.c.key_id).limit(1)
        if not include_revoked:
            query = query.where(self.keys.c.revoked_at.is_(None))
        with self.store.connect() as conn:
            return conn.execute(query).first() is not None

    # ------------------------------------------------------------------ requests
    def verify(self, key: str) -> Principal | None:
        """The principal of an active key, or None (unknown, malformed, revoked)."""
        now = time.monotonic()
        hit = self._verified.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        principal = self._verify(key)
        if len(self._verified) > 10_000:  # bounded: a flood of random keys cannot grow it
            self._verified.clear()
        self._verified[key] = (now + self.cache_s, principal)
        return principal

    def _verify(self, key: str) -> Principal | None:
        m = _KEY.match(key)
        if m is None:
            return None
        with self.store.connect() as conn:
            row = conn.execute(select(self.keys).where(self.keys.c.key_id == m.group(1))).mappings().first()
        if row is None or row["revoked_at"] is not None:
            return None
        if not hmac.compare_digest(row["hash"], _hash(row["salt"], m.group(2))):
            return None
        limits = Limits(rpm=row["rpm"], tpm=row["tpm"], budget_usd=row["budget_usd"],
                        budget_period=row["budget_period"])
        return Principal(name=row["name"], tenant=row["tenant"], key_id=row["key_id"], models=row["models"],
                         apps=row["apps"], limited=limits.any, limits=limits)

    def admit(self, principal: Principal, estimate_usd: float = 0.0) -> Admission:
        """Count the request against the key's rate limit and reserve its estimated cost; raises LimitExceeded
        (→ 429) or CountersDown (→ 503)."""
        if not principal.limited or principal.key_id is None:
            return Admission()
        return self.counters.admit(principal.key_id, principal.name, principal.limits, estimate_usd, self.clock())

    def settle(self, admission: Admission, cost_usd: float, tokens: int) -> None:
        """Record what the admitted request really cost (once)."""
        if admission.key_id is None or admission.settled:
            return
        admission.settled = True
        self.counters.settle(admission, cost_usd, tokens, self.clock())


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("salt", "hash")}
