"""Virtual keys: hashed secrets, tenants, allowed models/apps, budgets and rate limits held in the store.

A key looks like `fw-<key_id>-<secret>`. Only `key_id` (public) and a salted SHA-256 of the secret are stored;
the full key is shown once, by `create`. The secret is 256 random bits, so a fast hash is enough: there is
nothing to brute-force that a slow hash would protect.

Budgets and rate limits are counters in the store, changed by single atomic UPDATEs whose WHERE clause holds
the limit, so they are exact across threads, workers and processes sharing one store:

- budget: a request is admitted by `reserved += estimate WHERE spent + reserved < budget AND spent + reserved +
  estimate <= budget`; when it ends, `spent += actual cost, reserved -= estimate`. A request is refused once the
  settled spend reaches the budget (429, `Retry-After` = seconds to the next period for monthly budgets).
- rpm / tpm: one row per key per minute; admitted by `requests += 1 WHERE requests < rpm AND tokens < tpm`;
  tokens are added when the request ends. Refused → 429 with `Retry-After` = seconds to the next minute.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, or_, select, update

from flywheel.config import validate_tenant
from flywheel.errors import UserError
from flywheel.store import Store

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

    def may_use_model(self, alias: str) -> bool:
        return self.models is None or alias in self.models

    def may_use_app(self, app: str) -> bool:
        return self.apps is None or app in self.apps


@dataclass
class LimitExceeded(Exception):
    """A budget or rate limit refused the request (→ 429)."""

    message: str
    code: str
    retry_after: int | None = None


@dataclass
class Admission:
    key_id: str | None = None
    minute: int | None = None
    reserved: float = 0.0
    settled: bool = field(default=False)


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def month_of(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m")


def seconds_to_next_month(now: float) -> int:
    d = dt.datetime.fromtimestamp(now, dt.UTC)
    nxt = dt.datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=dt.UTC)
    return max(1, math.ceil(nxt.timestamp() - now))


class KeyStore:
    """The `api_keys` and `rate_windows` tables. `clock` is injectable (tests move time, never sleep)."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time, cache_s: float = 1.0):
        self.store = store
        self.clock = clock
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
        limited = row["budget_usd"] is not None or row["rpm"] is not None or row["tpm"] is not None
        return Principal(name=row["name"], tenant=row["tenant"], key_id=row["key_id"], models=row["models"],
                         apps=row["apps"], limited=limited)

    def admit(self, principal: Principal, estimate_usd: float = 0.0) -> Admission:
        """Count the request against the key's rate limit and reserve its estimated cost; raises LimitExceeded."""
        if not principal.limited or principal.key_id is None:
            return Admission()
        now, key_id = self.clock(), principal.key_id
        minute = int(now // 60)
        k, w = self.keys.c, self.windows.c
        with self.store.begin() as conn:
            row = conn.execute(select(k.rpm, k.tpm, k.budget_usd, k.budget_period, k.period)
                               .where(k.key_id == key_id)).mappings().first()
            if row is None:
                raise LimitExceeded("the key was deleted", "invalid_api_key")
            if row["rpm"] is not None or row["tpm"] is not None:
                conn.execute(_insert_ignore(conn, self.windows, {"key_id": key_id, "minute": minute,
                                                                 "requests": 0, "tokens": 0}))
                cond = [w.key_id == key_id, w.minute == minute]
                if row["rpm"] is not None:
                    cond.append(w.requests < row["rpm"])
                if row["tpm"] is not None:
                    cond.append(w.tokens < row["tpm"])
                done = conn.execute(update(self.windows).where(and_(*cond)).values(requests=w.requests + 1))
                if done.rowcount == 0:
                    raise LimitExceeded(f"rate limit of key {principal.name!r} reached for this minute",
                                        "rate_limit_exceeded", max(1, math.ceil((minute + 1) * 60 - now)))
            reserved = 0.0
            if row["budget_usd"] is not None:
                if row["budget_period"] == "month" and row["period"] != month_of(now):
                    conn.execute(update(self.keys).where(k.key_id == key_id, k.period == row["period"])
                                 .values(spent_usd=0.0, period=month_of(now)))
                reserved = max(0.0, estimate_usd)
                used = k.spent_usd + k.reserved_usd
                done = conn.execute(update(self.keys).where(
                    k.key_id == key_id, used < k.budget_usd, used + reserved <= k.budget_usd,
                ).values(reserved_usd=k.reserved_usd + reserved))
                if done.rowcount == 0:
                    wait = seconds_to_next_month(now) if row["budget_period"] == "month" else None
                    raise LimitExceeded(f"budget of key {principal.name!r} (${row['budget_usd']:g} per "
                                        f"{row['budget_period']}) is spent", "budget_exceeded", wait)
        return Admission(key_id=key_id, minute=minute, reserved=reserved)

    def settle(self, admission: Admission, cost_usd: float, tokens: int) -> None:
        """Record what the admitted request really cost (once)."""
        if admission.key_id is None or admission.settled:
            return
        admission.settled = True
        k, w = self.keys.c, self.windows.c
        with self.store.begin() as conn:
            if cost_usd or admission.reserved:
                conn.execute(update(self.keys).where(k.key_id == admission.key_id).values(
                    spent_usd=k.spent_usd + max(0.0, cost_usd), reserved_usd=k.reserved_usd - admission.reserved))
            if tokens and admission.minute is not None:
                conn.execute(update(self.windows).where(w.key_id == admission.key_id, w.minute == admission.minute)
                             .values(tokens=w.tokens + tokens))
            if admission.minute is not None:  # old windows are never read again
                conn.execute(self.windows.delete().where(w.key_id == admission.key_id,
                                                         w.minute < admission.minute - 1))


def _insert_ignore(conn: Any, table: Any, values: dict[str, Any]) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert(table).values(**values).on_conflict_do_nothing()


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in ("salt", "hash")}
