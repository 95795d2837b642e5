"""Budget and rate counters of virtual keys, behind one interface: in the store (default) or in Redis.

`admit()` checks a key's rpm / tpm window and budget and reserves the request's estimated cost, in one atomic
step, or raises `LimitExceeded`; `settle()` records what the request really cost. Both back-ends are exact
across threads, workers and processes: a budget is refused exactly once the settled spend reaches it.

- `StoreCounters` (no Redis configured): single atomic UPDATEs on `api_keys` / `rate_windows` whose WHERE
  clause holds the limit (see keys.py).
- `RedisCounters` (`server.redis`, or `cache.backend: redis://…`): one Lua script per admission and one per
  settlement, so check-and-reserve is atomic across every worker. Money is counted in integer nano-USD (exact
  sums). Redis is the fast counter, the store is the record:
    * `<prefix>budget:<key_id>:<period>` hash {s: spent, r: reserved}; when it is missing (first use in a
      period, a Redis restart, an eviction) the script asks for a seed and it is created from the store's
      `spent_usd`, so a Redis restart never resets a monthly spend. It expires a day after its month ends.
    * `<prefix>rate:<key_id>:<minute>` hash {r: requests, t: tokens}, expiring after two minutes.
    * every settlement also adds the cost to the store's `spent_usd` (what `flywheel keys list` shows).
  Redis unreachable: requests of keys with a budget or rate limit are refused with 503 (`CountersDown`), never
  counted in a second place, because workers counting in different places would let a budget be overspent.
  Keys without limits are served as usual.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy import and_, select, update

from flywheel.apps.session_vaults import redis_url_of
from flywheel.errors import UserError
from flywheel.text.install import pip_install

if TYPE_CHECKING:
    from flywheel.store import Store

log = logging.getLogger("flywheel.server")
NANO = 1_000_000_000  # nano-USD per USD in Redis
DEFAULT_PREFIX = "flywheel:keys:"
CONNECT_TIMEOUT_S = 0.5
SOCKET_TIMEOUT_S = 0.5


@dataclass
class Limits:
    """A key's limits, read with the key (so Redis admissions need no store round trip)."""

    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: str | None = None  # month | total

    @property
    def any(self) -> bool:
        return self.budget_usd is not None or self.rpm is not None or self.tpm is not None


@dataclass
class LimitExceeded(Exception):
    """A budget or rate limit refused the request (→ 429)."""

    message: str
    code: str
    retry_after: int | None = None


class CountersDown(Exception):
    """The shared counters cannot be reached (→ 503): a limited key is not served rather than counted wrong."""


@dataclass
class Admission:
    key_id: str | None = None
    minute: int | None = None
    reserved: float = 0.0
    settled: bool = field(default=False)
    period: str | None = None  # the budget period reserved against (Redis)
    rated: bool = False  # a rate window was counted (Redis)


def month_of(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m")


def seconds_to_next_month(now: float) -> int:
    d = dt.datetime.fromtimestamp(now, dt.UTC)
    nxt = dt.datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=dt.UTC)
    return max(1, math.ceil(nxt.timestamp() - now))


def seconds_to_next_minute(now: float, minute: int) -> int:
    return max(1, math.ceil((minute + 1) * 60 - now))


def rate_refused(name: str, now: float, minute: int) -> LimitExceeded:
    return LimitExceeded(f"rate limit of key {name!r} reached for this minute", "rate_limit_exceeded",
                         seconds_to_next_minute(now, minute))


def budget_refused(name: str, budget: float, period: str | None, now: float) -> LimitExceeded:
    wait = seconds_to_next_month(now) if period == "month" else None
    return LimitExceeded(f"budget of key {name!r} (${budget:g} per {period}) is spent", "budget_exceeded", wait)


class Counters(Protocol):
    def admit(self, key_id: str, name: str, limits: Limits | None, estimate_usd: float, now: float) -> Admission: ...

    def settle(self, admission: Admission, cost_usd: float, tokens: int, now: float) -> None: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------- store


class StoreCounters:
    """Counters in the store's `api_keys` and `rate_windows` tables (each change one atomic UPDATE)."""

    def __init__(self, store: Store):
        self.store = store
        self.keys = store.table("api_keys")
        self.windows = store.table("rate_windows")

    def admit(self, key_id: str, name: str, limits: Limits | None, estimate_usd: float, now: float) -> Admission:
        minute = int(now // 60)
        k, w = self.keys.c, self.windows.c
        # a refusal raises inside: the whole transaction (rate count too) rolls back; it reads, then writes, so
        # it takes SQLite's write lock first
        with self.store.begin(write_first=True) as conn:
            row = conn.execute(select(k.rpm, k.tpm, k.budget_usd, k.budget_period, k.period)
                               .where(k.key_id == key_id)).mappings().first()
            if row is None:
                raise LimitExceeded("the key was deleted", "invalid_api_key")
            if row["rpm"] is not None or row["tpm"] is not None:
                conn.execute(insert_ignore(conn, self.windows, {"key_id": key_id, "minute": minute,
                                                                "requests": 0, "tokens": 0}))
                cond = [w.key_id == key_id, w.minute == minute]
                if row["rpm"] is not None:
                    cond.append(w.requests < row["rpm"])
                if row["tpm"] is not None:
                    cond.append(w.tokens < row["tpm"])
                done = conn.execute(update(self.windows).where(and_(*cond)).values(requests=w.requests + 1))
                if done.rowcount == 0:
                    raise rate_refused(name, now, minute)
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
                    raise budget_refused(name, row["budget_usd"], row["budget_period"], now)
        return Admission(key_id=key_id, minute=minute, reserved=reserved)

    def settle(self, admission: Admission, cost_usd: float, tokens: int, now: float) -> None:
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

    def close(self) -> None:
        pass


def insert_ignore(conn: Any, table: Any, values: dict[str, Any]) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    return insert(table).values(**values).on_conflict_do_nothing()


def record_spend(store: Store, key_id: str, cost_usd: float, period: str | None) -> None:
    """Add `cost_usd` to the key's `spent_usd` in the store (the record behind Redis), starting a new month's
    count when the period changed."""
    keys = store.table("api_keys")
    k = keys.c
    with store.begin() as conn:
        if period is not None and period != "total":
            conn.execute(update(keys).where(k.key_id == key_id, k.period != period)
                         .values(spent_usd=0.0, period=period))
        conn.execute(update(keys).where(k.key_id == key_id).values(spent_usd=k.spent_usd + cost_usd))


def stored_spend(store: Store, key_id: str, period: str) -> float:
    keys = store.table("api_keys")
    with store.connect() as conn:
        row = conn.execute(select(keys.c.spent_usd, keys.c.period).where(keys.c.key_id == key_id)).first()
    if row is None or (period != "total" and row.period != period):
        return 0.0
    return float(row.spent_usd or 0.0)


# ---------------------------------------------------------------------------------------------- Redis

# KEYS: rate window, budget.  ARGV: rpm, tpm, budget (nano-USD), reserve (nano), window ttl, budget ttl,
# seed (nano, or -1 when not known yet). -1 means "no such limit". Returns 0 admitted, 1 rate refused,
# 2 budget refused, 3 budget counter missing (call again with the seed from the store).
_ADMIT = """
local rpm, tpm, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local reserve, seed = tonumber(ARGV[4]), tonumber(ARGV[7])
if rpm >= 0 or tpm >= 0 then
  local w = redis.call('HMGET', KEYS[1], 'r', 't')
  local req, tok = tonumber(w[1] or '0'), tonumber(w[2] or '0')
  if (rpm >= 0 and req >= rpm) or (tpm >= 0 and tok >= tpm) then return 1 end
end
if budget >= 0 then
  if redis.call('EXISTS', KEYS[2]) == 0 then
    if seed < 0 then return 3 end
    redis.call('HSET', KEYS[2], 's', ARGV[7], 'r', 0)  -- the raw string: large numbers stay integers
    if tonumber(ARGV[6]) > 0 then redis.call('EXPIRE', KEYS[2], ARGV[6]) end
  end
  local b = redis.call('HMGET', KEYS[2], 's', 'r')
  local used = tonumber(b[1] or '0') + tonumber(b[2] or '0')
  if used >= budget or used + reserve > budget then return 2 end
  redis.call('HINCRBY', KEYS[2], 'r', ARGV[4])
end
if rpm >= 0 or tpm >= 0 then
  redis.call('HINCRBY', KEYS[1], 'r', 1)
  redis.call('EXPIRE', KEYS[1], ARGV[5])
end
return 0
"""

# KEYS: rate window, budget.  ARGV: tokens, cost (nano), minus the reserved (nano). Returns 1 when the budget counter
# existed (and was settled), 0 when it had gone (a Redis restart: the store's record is the truth then).
_SETTLE = """
if tonumber(ARGV[1]) > 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 't', ARGV[1])
end
if KEYS[2] == '' or redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], 's', ARGV[2])
local r = redis.call('HINCRBY', KEYS[2], 'r', ARGV[3])
if r < 0 then redis.call('HSET', KEYS[2], 'r', 0) end
return 1
"""


def split_redis_url(url: str) -> tuple[str, str]:
    """(URL for redis-py with short default timeouts, key prefix from `?prefix=`)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    prefix = query.pop("prefix", DEFAULT_PREFIX)
    query.setdefault("socket_timeout", str(SOCKET_TIMEOUT_S))
    query.setdefault("socket_connect_timeout", str(CONNECT_TIMEOUT_S))
    return urlunsplit(parts._replace(query=urlencode(query))), prefix


def _nano(usd: float) -> int:
    return max(0, round(usd * NANO))


class RedisCounters:
    """Counters in Redis (exact across every worker on one Redis), spend recorded in the store as well."""

    def __init__(self, url: str, store: Store, *, client: Any = None):
        self.store = store
        self.url = url
        clean, self.prefix = split_redis_url(url)
        try:
            import redis
        except ImportError:
            raise UserError("budgets and rate limits in Redis need the redis client",
                            hint=f"{pip_install('redis')}, or remove `server.redis`") from None
        if client is None:
            try:
                from redis.backoff import NoBackoff
                from redis.retry import Retry

                client = redis.Redis.from_url(clean, retry=Retry(NoBackoff(), 1), health_check_interval=0)
            except ValueError as exc:
                raise UserError(f"cannot parse the Redis URL {url!r}: {exc}",
                                hint="use redis://host:6379/0 in `server.redis`") from None
        self.client = client
        self._errors: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)
        self._admit = client.register_script(_ADMIT)
        self._settle = client.register_script(_SETTLE)

    def _keys(self, key_id: str, minute: int, period: str | None) -> list[str]:
        return [f"{self.prefix}rate:{key_id}:{minute}", f"{self.prefix}budget:{key_id}:{period}" if period else ""]

    def _run(self, script: Callable[..., Any], keys: list[str], args: list[Any]) -> int:
        try:
            return int(script(keys=keys, args=args))
        except self._errors as exc:
            log.warning("Redis counters unreachable (%s): refusing limited keys", type(exc).__name__)
            raise CountersDown(f"the budget and rate counters (Redis) are unreachable: {type(exc).__name__}") \
                from None

    def admit(self, key_id: str, name: str, limits: Limits | None, estimate_usd: float, now: float) -> Admission:
        if limits is None or not limits.any:
            return Admission()
        minute = int(now // 60)
        period = None
        ttl = 0
        if limits.budget_usd is not None:
            if limits.budget_period == "month":
                period = month_of(now)
                ttl = seconds_to_next_month(now) + 86_400
            else:
                period = "total"
        reserve = _nano(estimate_usd) if period else 0
        keys = self._keys(key_id, minute, period)
        args: list[Any] = [-1 if limits.rpm is None else limits.rpm, -1 if limits.tpm is None else limits.tpm,
                           -1 if limits.budget_usd is None else _nano(limits.budget_usd), reserve, 120, ttl, -1]
        got = self._run(self._admit, keys, args)
        if got == 3:  # no budget counter in Redis for this period: seed it from the store's record
            assert period is not None
            args[-1] = _nano(stored_spend(self.store, key_id, period))
            got = self._run(self._admit, keys, args)
        if got == 1:
            raise rate_refused(name, now, minute)
        if got == 2:
            raise budget_refused(name, limits.budget_usd or 0.0, limits.budget_period, now)
        return Admission(key_id=key_id, minute=minute, reserved=reserve / NANO, period=period,
                         rated=limits.rpm is not None or limits.tpm is not None)

    def settle(self, admission: Admission, cost_usd: float, tokens: int, now: float) -> None:
        assert admission.key_id is not None and admission.minute is not None
        keys = self._keys(admission.key_id, admission.minute, admission.period)
        cost = _nano(cost_usd)
        try:
            # Redis first: if its counter is gone (restart), it is re-seeded from the store, which then
            # already holds this cost; the reverse order could count it twice
            self._run(self._settle, keys, [tokens if admission.rated else 0, cost, -_nano(admission.reserved)])
        except CountersDown:
            pass  # the reservation expires with the counter; the spend still goes to the record below
        if admission.period is not None and cost:
            record_spend(self.store, admission.key_id, cost / NANO, admission.period)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a dead connection
            self.client.close()


def check_redis_answers(url: str) -> None:
    """`flywheel serve`'s start-up check: the counters' Redis answers a PING, else one line (exit 2).

    Only at start: a Redis that goes away later fails closed per request (see `RedisCounters`)."""
    try:
        import redis
    except ImportError:
        raise UserError("budgets and rate limits in Redis need the redis client",
                        hint=f"{pip_install('redis')}, or remove `server.redis`") from None
    from flywheel.store.url_display import display_url

    clean, _ = split_redis_url(url)
    shown = display_url(url)
    try:
        client = redis.Redis.from_url(clean, health_check_interval=0)
    except ValueError as exc:
        raise UserError(f"cannot parse the Redis URL {shown!r}: {exc}",
                        hint="use redis://host:6379/0 in `server.redis`") from None
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        raise UserError(f"the Redis counters at {shown} do not answer: {exc}",
                        hint="start Redis, or fix `server.redis` (or the Redis `cache.backend`) in "
                             "flywheel.yaml; once running, a Redis outage refuses only limited keys (503)") from None
    finally:
        with contextlib.suppress(Exception):
            client.close()


def build_counters(config: Any, store: Store) -> Counters:
    url = redis_url_of(config)
    return RedisCounters(url, store) if url else StoreCounters(store)
