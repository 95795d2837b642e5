"""Chat sessions' redaction vaults shared by every server worker, so a turn served by another worker still shows
the user the values earlier turns masked: in Redis (`server.redis`, or `cache.backend: redis://…`), else, when
the process has a vault key (FLYWHEEL_VAULT_KEY), in the store (tables `session_vaults`, `session_vault_values`:
the same scheme, one row per session and one per value, deleted `ttl_s` after the session's last turn).

What Redis holds per session (one hash, expiring `ttl_s` after the session's last turn):
- `nonce`: the session's placeholder nonce;
- `n:TYPE`: how many placeholders of that type the session issued (numbers are taken atomically, so two workers
  never give two values one placeholder);
- `v:FINGERPRINT` → the number of a value's placeholder: the fingerprint is an HMAC of the type and the value, so
  the same value keeps its placeholder without Redis ever seeing it;
- `p:TYPE:N` → the value, encrypted with AES-GCM (the hash's key and the type are the associated data, so a
  ciphertext copied into another session does not decrypt).

The key is `FLYWHEEL_VAULT_KEY` (32 bytes, base64 or hex), which `flywheel serve --workers N` sets for its workers
to a new random key when it is not set; a process without it draws its own (with Redis), or keeps its vaults in
process memory (without: flywheel.apps.memory.SessionVaults). Several machines share vaults only
when they are given the same key; a value sealed under another key does not decrypt and stays masked, as a value
from a forgotten session does. Restarting `flywheel serve` (without a fixed key) makes the values unreadable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import importlib.util
import logging
import os
import secrets
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from flywheel.apps.memory import SESSION_VAULT_TTL_S, SessionVault
from flywheel.checks.pii_placeholders import placeholder, placeholder_type
from flywheel.errors import UserError
from flywheel.store.schema_session_vaults import session_vault_values as v_t
from flywheel.store.schema_session_vaults import session_vaults as s_t
from flywheel.text.install import pip_install

KEY_ENV = "FLYWHEEL_VAULT_KEY"
log = logging.getLogger("flywheel.apps.session_vaults")
_PREFIX = "flywheel:vault:"
# KEYS[1] the session's hash; ARGV: value field, counter field, sealed-value field prefix, ciphertext, ttl.
_ISSUE = """
local n = redis.call('HGET', KEYS[1], ARGV[1])
if not n then
  n = redis.call('HINCRBY', KEYS[1], ARGV[2], 1)
  redis.call('HSET', KEYS[1], ARGV[1], n, ARGV[3] .. n, ARGV[4])
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return tonumber(n)
"""


def vault_key() -> bytes:
    """This process's vault key: FLYWHEEL_VAULT_KEY, else a random one set in the environment (inherited by
    workers started after this call)."""
    raw = os.environ.get(KEY_ENV, "").strip()
    if not raw:
        raw = secrets.token_hex(32)
        os.environ[KEY_ENV] = raw
    for decode in (bytes.fromhex, base64.b64decode):
        try:
            key = decode(raw)
        except (ValueError, binascii.Error):
            continue
        if len(key) == 32:
            return key
    raise UserError(f"{KEY_ENV} is not a 32-byte key in hex or base64",
                    hint=f"make one with: python -c \"import secrets; print(secrets.token_hex(32))\" and set {KEY_ENV}")


class _Sealer:
    def __init__(self, key: bytes):
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:
            raise UserError("shared session vaults need the `cryptography` package",
                            hint=pip_install("redis")) from exc
        self._aead = AESGCM(key)
        self._mac_key = hashlib.sha256(b"flywheel vault fingerprint" + key).digest()

    def fingerprint(self, entity_type: str, value: str) -> str:
        return hmac.new(self._mac_key, f"{entity_type}\0{value}".encode(), hashlib.sha256).hexdigest()[:32]

    def seal(self, value: str, where: bytes) -> bytes:
        iv = secrets.token_bytes(12)
        return iv + self._aead.encrypt(iv, value.encode(), where)

    def open(self, sealed: bytes, where: bytes) -> str | None:
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(sealed[:12], sealed[12:], where).decode()
        except (InvalidTag, ValueError, UnicodeDecodeError):
            return None  # sealed under another key: the value stays masked


def check_shared_vaults() -> None:
    """`flywheel serve`'s start-up check with a Redis: the key is valid (or drawn now, before workers start, so
    they share it) and the cipher is installed; one line, exit 2, otherwise."""
    _Sealer(vault_key())


def share_vaults_with_workers(redis_url: str | None, workers: int) -> str | None:
    """`flywheel serve`'s start-up step for chat sessions' vaults, before its workers start: with Redis, the check
    above; without, for several workers, the key drawn (or checked) now so every worker inherits it and they share
    the vaults in the store. A warning to print when they cannot (no `cryptography`: each worker keeps its own)."""
    if redis_url:
        check_shared_vaults()
        return None
    if workers <= 1:
        return None
    vault_key()
    if not _has_cipher():
        return ("chat sessions' redaction vaults stay per worker (a turn on another worker shows the placeholder, "
                f"not the value): sharing them needs the `cryptography` package; {pip_install('redis')}")
    return None


def _has_cipher() -> bool:
    return importlib.util.find_spec("cryptography") is not None


class _SharedVault(SessionVault):
    """A session's vault whose placeholder numbers are taken where every worker sees them (`_issue`); values are
    sealed with the session key and the type as associated data (`_where`), so a copy in another session does
    not open."""

    key: str

    def _where(self, entity_type: str) -> bytes:
        return f"{self.key}\0{entity_type}".encode()

    def _issue(self, entity_type: str, value: str) -> int:
        raise NotImplementedError

    def placeholder_for(self, entity_type: str, value: str) -> str:
        with self.lock:
            for known_key, known in self.items():
                if known == value and placeholder_type(known_key) == entity_type:
                    return known_key
            key = placeholder(entity_type, self._issue(entity_type, value), self.nonce)
            dict.__setitem__(self, key, value)
            return key


class RedisSessionVault(_SharedVault):
    """A session's vault read from Redis; a new value's placeholder number is taken in Redis (one script call)."""

    def __init__(self, owner: RedisSessionVaults, key: str):
        super().__init__()
        self.owner, self.key = owner, key
        client, ttl = owner.client, owner.ttl_s
        client.hsetnx(key, "nonce", self.nonce)
        fields: dict[bytes, bytes] = client.hgetall(key)
        client.expire(key, ttl)
        self.nonce = fields.get(b"nonce", self.nonce.encode()).decode()
        for name, sealed in fields.items():
            if not name.startswith(b"p:"):
                continue
            entity_type, _, number = name[2:].decode().rpartition(":")
            value = owner.sealer.open(sealed, self._where(entity_type))
            if value is not None and entity_type and number.isdigit():
                dict.__setitem__(self, placeholder(entity_type, number, self.nonce), value)

    def _issue(self, entity_type: str, value: str) -> int:
        owner = self.owner
        fingerprint = owner.sealer.fingerprint(entity_type, value)
        sealed = owner.sealer.seal(value, self._where(entity_type))  # the number is only known in Redis
        return int(owner.issue(keys=[self.key], args=[f"v:{fingerprint}", f"n:{entity_type}",
                                                        f"p:{entity_type}:", sealed, owner.ttl_s]))


class RedisSessionVaults:
    """`SessionVaults` (get / forget) in Redis: every worker continues the same sessions."""

    def __init__(self, url: str, ttl_s: float = SESSION_VAULT_TTL_S, key: bytes | None = None,
                 client: Any = None):
        if ttl_s <= 0:
            raise UserError("session vaults need ttl_s > 0")
        if client is None:
            import redis

            client = redis.Redis.from_url(url)
        self.client, self.ttl_s = client, max(int(ttl_s), 1)
        self.sealer = _Sealer(key if key is not None else vault_key())
        self.issue = client.register_script(_ISSUE)

    def get(self, *key: str) -> SessionVault:
        return RedisSessionVault(self, _vault_key_name(*key))

    def forget(self, *key: str) -> None:
        self.client.delete(_vault_key_name(*key))


def _vault_key_name(*key: str) -> str:
    return _PREFIX + hashlib.sha256("\0".join(key).encode()).hexdigest()[:40]


class StoreSessionVault(_SharedVault):
    """A session's vault read from the store; a new value's placeholder number is taken in a store transaction
    (the fingerprint and the number are unique per session, so two workers never give two values one number)."""

    def __init__(self, owner: StoreSessionVaults, key: str):
        super().__init__()
        self.owner, self.key = owner, key
        self.nonce, sealed = owner.open_session(key, self.nonce)
        for entity_type, number, value in sealed:
            opened = owner.sealer.open(value, self._where(entity_type))
            if opened is not None:
                dict.__setitem__(self, placeholder(entity_type, number, self.nonce), opened)

    def _issue(self, entity_type: str, value: str) -> int:
        sealer = self.owner.sealer
        return self.owner.issue(self.key, entity_type, sealer.fingerprint(entity_type, value),
                                sealer.seal(value, self._where(entity_type)))


class StoreSessionVaults:
    """`SessionVaults` (get / forget) in the flywheel store, for workers that share a store and a vault key but no
    Redis. `on_store(store)` gives the vaults of one store (ConversationMemory binds them to its own)."""

    _ISSUE_ATTEMPTS = 8  # a concurrent issue by another worker makes an insert conflict: read again and retry

    def __init__(self, store: Any = None, ttl_s: float = SESSION_VAULT_TTL_S, key: bytes | None = None,
                 clock: Callable[[], float] = time.time, sealer: _Sealer | None = None):
        if ttl_s <= 0:
            raise UserError("session vaults need ttl_s > 0")
        self.store, self.ttl_s, self.clock = store, float(ttl_s), clock
        self.sealer = sealer or _Sealer(key if key is not None else vault_key())
        self._swept = [0.0]  # shared by the bound copies: the last sweep of expired sessions

    def on_store(self, store: Any) -> StoreSessionVaults:
        bound = StoreSessionVaults(store, self.ttl_s, clock=self.clock, sealer=self.sealer)
        bound._swept = self._swept
        return bound

    def get(self, *key: str) -> SessionVault:
        return StoreSessionVault(self, _vault_key_name(*key))

    def forget(self, *key: str) -> None:
        name = _vault_key_name(*key)
        with self.store.begin() as conn:
            conn.execute(delete(v_t).where(v_t.c.key == name))
            conn.execute(delete(s_t).where(s_t.c.key == name))

    def open_session(self, name: str, nonce: str) -> tuple[str, list[tuple[str, int, bytes]]]:
        """The session's nonce (`nonce` for a new or expired session) and its sealed values; its last use is now."""
        now = self.clock()
        self._sweep(now)
        for _ in range(self._ISSUE_ATTEMPTS):
            try:
                with self.store.begin(write_first=True) as conn:
                    row = conn.execute(select(s_t.c.nonce, s_t.c.used_at).where(s_t.c.key == name)).first()
                    if row is not None and now - row.used_at >= self.ttl_s:  # expired, not yet swept: a new vault
                        conn.execute(delete(v_t).where(v_t.c.key == name))
                        conn.execute(delete(s_t).where(s_t.c.key == name))
                        row = None
                    if row is None:
                        conn.execute(insert(s_t).values(key=name, nonce=nonce, used_at=now))
                        return nonce, []
                    conn.execute(update(s_t).where(s_t.c.key == name).values(used_at=now))
                    values = [(r.entity_type, int(r.number), bytes(r.sealed)) for r in conn.execute(
                        select(v_t.c.entity_type, v_t.c.number, v_t.c.sealed).where(v_t.c.key == name))]
                return str(row.nonce), values
            except IntegrityError:
                continue  # another worker started this session's vault first: read its nonce
        raise RuntimeError("could not open a session vault: the store kept conflicting")

    def issue(self, name: str, entity_type: str, fingerprint: str, sealed: bytes) -> int:
        """The number of the value's placeholder in the session: the one it already has, else the next free."""
        c = v_t.c
        for _ in range(self._ISSUE_ATTEMPTS):
            try:
                with self.store.begin(write_first=True) as conn:
                    known = conn.execute(select(c.number).where(c.key == name, c.fingerprint == fingerprint)).first()
                    if known is not None:
                        return int(known.number)
                    top = conn.execute(select(func.max(c.number)).where(c.key == name,
                                                                        c.entity_type == entity_type)).scalar()
                    number = int(top or 0) + 1
                    conn.execute(insert(v_t).values(key=name, entity_type=entity_type, number=number,
                                                    fingerprint=fingerprint, sealed=sealed))
                    return number
            except IntegrityError:
                continue  # another worker took this number (or this value) first
        raise RuntimeError(f"could not number a {entity_type} placeholder: the store kept conflicting")

    def _sweep(self, now: float) -> None:
        """Delete the sessions unused for `ttl_s` (at most once a minute per process)."""
        if now - self._swept[0] < min(60.0, self.ttl_s):
            return
        self._swept[0] = now
        cutoff = now - self.ttl_s
        with self.store.begin() as conn:
            conn.execute(delete(v_t).where(v_t.c.key.in_(select(s_t.c.key).where(s_t.c.used_at <= cutoff))))
            conn.execute(delete(s_t).where(s_t.c.used_at <= cutoff))


_SHARED: dict[str, RedisSessionVaults] = {}
_IN_STORE: list[StoreSessionVaults] = []
_WARNED: list[bool] = []


def vaults_for(config: Any) -> RedisSessionVaults | StoreSessionVaults | None:
    """The shared vaults of this process: in Redis for a project whose server counts there (one client per URL),
    else in the store when the process has a vault key (FLYWHEEL_VAULT_KEY: given, or set by `flywheel serve
    --workers N` for its workers), else None (the process-wide in-memory vaults)."""
    url = redis_url_of(config)
    if not url:
        if not os.environ.get(KEY_ENV, "").strip():
            return None
        if not _has_cipher():
            if not _WARNED:
                _WARNED.append(True)
                log.warning("%s is set but `cryptography` is not installed: chat sessions' redaction vaults stay "
                            "in this process (%s)", KEY_ENV, pip_install("redis"))
            return None
        if not _IN_STORE:
            _IN_STORE.append(StoreSessionVaults())
        return _IN_STORE[0]
    if url not in _SHARED:
        _SHARED[url] = RedisSessionVaults(url)
    return _SHARED[url]


def redis_url_of(config: Any) -> str | None:
    """The Redis URL the server shares state in: `server.redis`, else `cache.backend` when it is a Redis URL."""
    url = getattr(getattr(config, "server", None), "redis", None)
    if url:
        return str(url)
    backend = str(getattr(getattr(config, "cache", None), "backend", "") or "")
    if backend.startswith(("redis://", "rediss://", "unix://")):
        return backend.split("?", 1)[0]  # the cache's `?prefix=` is the cache's, not the counters'
    return None


__all__ = ["KEY_ENV", "RedisSessionVault", "RedisSessionVaults", "StoreSessionVault", "StoreSessionVaults",
           "check_shared_vaults", "redis_url_of", "share_vaults_with_workers", "vault_key", "vaults_for"]
