"""Feedback tokens: `base64url(trace_id.expiry).signature`, an HMAC-SHA256 with the server secret.

A token lets its holder (a browser) post feedback on ONE trace until it expires, and nothing else: it reads
nothing and names no tenant or key. The secret comes from FLYWHEEL_SECRET, else from `.flywheel/server_secret`
in the project (created on first start, mode 0600), so every worker of one project accepts every worker's tokens.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable

from flywheel.config import Project

DEFAULT_TTL_S = 7 * 24 * 3600
MIN_SECRET_CHARS = 16
_TRACE = re.compile(r"^[0-9a-f]{1,32}$")


def check_env_secrets() -> None:
    """A FLYWHEEL_SECRET or FLYWHEEL_ADMIN_KEY short enough to guess (`change-me`) is refused at start-up: the
    secret signs every dashboard session and feedback token, the admin key opens everything."""
    from flywheel.errors import UserError

    for name, what in (("FLYWHEEL_SECRET", "signs every dashboard session and feedback token"),
                       ("FLYWHEEL_ADMIN_KEY", "manages every key and sees every tenant")):
        value = os.environ.get(name) or ""
        if value and len(value.strip()) < MIN_SECRET_CHARS:
            raise UserError(f"{name} is {len(value.strip())} characters long: a value that short can be guessed, "
                            f"and it {what}",
                            hint=f"set it to at least {MIN_SECRET_CHARS} random characters, e.g. the output of "
                                 "`python -c \"import secrets; print(secrets.token_urlsafe(32))\"`")


def load_secret(project: Project) -> bytes:
    env = os.environ.get("FLYWHEEL_SECRET")
    if env:
        return env.encode()
    path = project.data_dir / "server_secret"
    if not path.exists():
        project.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker wrote it first
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


class TokenSigner:
    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time, ttl_s: int = DEFAULT_TTL_S):
        self.secret, self.clock, self.ttl_s = secret, clock, ttl_s

    def _sig(self, payload: str) -> str:
        mac = hmac.new(self.secret, f"feedback:{payload}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def issue(self, trace_id: str) -> tuple[str, int]:
        """(token, expiry as Unix seconds) for `trace_id`."""
        expires = int(self.clock()) + self.ttl_s
        payload = f"{trace_id}.{expires}"
        body = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
        return f"{body}.{self._sig(payload)}", expires

    def verify(self, token: str) -> str | None:
        """The trace id the token is for, or None if it is malformed, forged or expired."""
        if not isinstance(token, str) or len(token) > 300 or token.count(".") != 1:
            return None
        body, sig = token.split(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("ascii")
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(sig, self._sig(payload)):
            return None
        trace_id, _, expires = payload.partition(".")
        if not _TRACE.match(trace_id) or not expires.isdigit() or int(expires) < self.clock():
            return None
        return trace_id
