"""Chat sessions' redaction vaults shared by every server worker, in Redis (`server.redis`, or `cache.backend:
redis://…`), so a turn served by another worker still shows the user the values earlier turns masked.

What Redis holds per session (one hash, expiring `ttl_s` after the session's last turn):
- `nonce`: the session's placeholder nonce;
- `n:TYPE`: how many placeholders of that type the session issued (numbers are taken atomically, so two workers
  never give two values one placeholder);
- `v:FINGERPRINT` → the number of a value's placeholder: the fingerprint is an HMAC of the type and the value, so
  the same value keeps its placeholder without Redis ever seeing it;
- `p:TYPE:N` → the value, encrypted with AES-GCM (the hash's key and the type are the associated data, so a
  ciphertext copied into another session does not decrypt).

The key is `FLYWHEEL_VAULT_KEY` (32 bytes, base64 or hex), which `flywheel serve --workers N` sets for its workers
to a new random key when it is not set; a process without it draws its own. Several machines share vaults only
when they are given the same key; a value sealed under another key does not decrypt and stays masked, as a value
from a forgotten session does. Restarting `flywheel serve` (without a fixed key) makes the values unreadable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
from typing import Any

from flywheel.apps.memory import SESSION_VAULT_TTL_S, SessionVault
from flywheel.checks.pii_placeholders import placeholder, placeholder_type
from flywheel.errors import UserError
from flywheel.text.install import pip_install

KEY_ENV = "FLYWHEEL_VAULT_KEY"
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


class RedisSessionVault(SessionVault):
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

    def _where(self, entity_type: str) -> bytes:
        return f"{self.key}\0{entity_type}".encode()

    def placeholder_for(self, entity_type: str, value: str) -> str:
        with self.lock:
            for known_key, known in self.items():
                if known == value and placeholder_type(known_key) == entity_type:
                    return known_key
            owner = self.owner
            fingerprint = owner.sealer.fingerprint(entity_type, value)
            sealed = owner.sealer.seal(value, self._where(entity_type))  # the number is only known in Redis
            number = int(owner.issue(keys=[self.key], args=[f"v:{fingerprint}", f"n:{entity_type}",
                                                              f"p:{entity_type}:", sealed, owner.ttl_s]))
            key = placeholder(entity_type, number, self.nonce)
            dict.__setitem__(self, key, value)
            return key


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

    def _key(self, *key: str) -> str:
        return _PREFIX + hashlib.sha256("\0".join(key).encode()).hexdigest()[:40]

    def get(self, *key: str) -> SessionVault:
        return RedisSessionVault(self, self._key(*key))

    def forget(self, *key: str) -> None:
        self.client.delete(self._key(*key))


_SHARED: dict[str, RedisSessionVaults] = {}


def vaults_for(config: Any) -> RedisSessionVaults | None:
    """The shared vaults for a project whose server counts in Redis (one client per URL per process), else None
    (the process-wide in-memory vaults)."""
    url = redis_url_of(config)
    if not url:
        return None
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


__all__ = ["KEY_ENV", "RedisSessionVault", "RedisSessionVaults", "check_shared_vaults", "redis_url_of", "vault_key", "vaults_for"]
