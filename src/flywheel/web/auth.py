"""Who is looking at the dashboard, and the forms' CSRF protection.

- Open: on a loopback address before any key exists (as the API), everyone sees every tenant, when the browser
  asks for a loopback name (localhost, 127.0.0.1, [::1]): any other Host (DNS rebinding) gets a 403 page.
- Otherwise a viewer logs in at /ui/login with an API key (or FLYWHEEL_ADMIN_KEY); the session cookie `fw_session`
  is `key_id|kind|expiry` signed with the server secret (HttpOnly, SameSite=Lax, Secure on https). The key
  itself is never put in the cookie; revoking the key (or changing FLYWHEEL_ADMIN_KEY) ends its sessions at the
  next request.
  Scripts may send `Authorization: Bearer KEY` instead (e.g. for the `.json` twins).
- A key sees only its tenant's traces; another tenant's trace by URL is a 404, as an unknown one.
- CSRF: every form carries `csrf` = HMAC(secret, the `fw_csrf` cookie's nonce); a POST without a matching one is
  refused (403), so another site cannot post with the viewer's cookie.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy import select

from flywheel.server.errors import ApiError

SESSION_COOKIE = "fw_session"
CSRF_COOKIE = "fw_csrf"
SESSION_TTL_S = 12 * 3600


@dataclass
class Viewer:
    name: str
    tenant: str | None  # None: every tenant (open mode, admin)
    kind: str  # open | admin | key

    @property
    def scoped(self) -> bool:
        return self.tenant is not None


def _state(request: Request) -> Any:
    return request.app.state.flywheel


def _mac(request: Request, purpose: str, payload: str) -> str:
    secret = _state(request).signer.secret
    digest = hmac.new(secret, f"ui-{purpose}:{payload}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def is_open(request: Request) -> bool:
    from flywheel.server.app import local_name

    return would_be_open(request) and local_name(request.headers.get("host"))


def would_be_open(request: Request) -> bool:
    """A loopback server without keys: open, when the browser asks for it by a local name (server.app.local_name)."""
    state = _state(request)
    return bool(state.allow_open and not state._keys_exist())


def viewer_of(request: Request) -> Viewer | None:
    """The viewer of this request, or None when a login is needed."""
    state = _state(request)
    if request.headers.get("authorization") or request.headers.get("x-api-key"):
        try:
            p = state.authenticate(request.headers)
        except ApiError:
            return None
        return Viewer(p.name, None if p.admin or p.name == "open" else p.tenant, "admin" if p.admin else "key")
    if is_open(request):
        return Viewer("open", None, "open")
    return _from_cookie(request)


def _from_cookie(request: Request) -> Viewer | None:
    raw = request.cookies.get(SESSION_COOKIE) or ""
    payload, _, sig = raw.rpartition(".")
    if not payload or not hmac.compare_digest(sig, _mac(request, "session", payload)):
        return None
    try:
        key_id, kind, expiry = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().split("|")
        if float(expiry) < _state(request).clock():
            return None
    except (ValueError, UnicodeDecodeError):
        return None
    state = _state(request)
    if kind == "admin":  # only while FLYWHEEL_ADMIN_KEY is still the key it logged in with
        ok = state.admin_key and hmac.compare_digest(key_id, _admin_id(request, state.admin_key))
        return Viewer("admin", None, "admin") if ok else None
    keys = state.keys.keys
    with state.store.engine.connect() as conn:
        row = conn.execute(select(keys.c.name, keys.c.tenant, keys.c.revoked_at)
                           .where(keys.c.key_id == key_id)).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    return Viewer(row["name"], row["tenant"], "key")


def login(request: Request, key: str) -> str | None:
    """The session cookie value for `key`, or None when the key is not valid."""
    state = _state(request)
    key = key.strip()
    if state.admin_key and key and hmac.compare_digest(key.encode(), state.admin_key.encode()):
        key_id, kind = _admin_id(request, state.admin_key), "admin"
    else:
        principal = state.keys.verify(key) if key else None
        if principal is None or principal.key_id is None:
            return None
        key_id, kind = principal.key_id, "key"
    payload = base64.urlsafe_b64encode(f"{key_id}|{kind}|{state.clock() + SESSION_TTL_S:.0f}".encode())
    text = payload.decode().rstrip("=")
    return f"{text}.{_mac(request, 'session', text)}"


def _admin_id(request: Request, admin_key: str) -> str:
    """An admin session names the admin key it logged in with (by a MAC, never the key): changing
    FLYWHEEL_ADMIN_KEY, e.g. after it leaked, ends the sessions of the old one."""
    return "admin-" + _mac(request, "admin", admin_key)[:22]


def set_session(request: Request, response: Response, value: str | None) -> None:
    if value is None:
        response.delete_cookie(SESSION_COOKIE, path="/ui")
        return
    response.set_cookie(SESSION_COOKIE, value, max_age=SESSION_TTL_S, path="/ui", httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")


# ------------------------------------------------------------------------------------------ CSRF
def csrf_token(request: Request, nonce: str) -> str:
    return _mac(request, "csrf", nonce)[:32]


def ensure_csrf_cookie(request: Request, response: Response) -> None:
    nonce = request.scope.get("flywheel.csrf_nonce")
    if nonce and not request.cookies.get(CSRF_COOKIE):
        response.set_cookie(CSRF_COOKIE, nonce, path="/ui", httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")


def prepare_csrf(request: Request) -> None:
    """Give this request a CSRF nonce: the cookie's, or a new one (set on the response by `render`)."""
    request.scope["flywheel.csrf_nonce"] = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(16)


def csrf_ok(request: Request, form: dict[str, str]) -> bool:
    nonce = request.cookies.get(CSRF_COOKIE)
    sent = form.get("csrf") or request.headers.get("x-csrf-token") or ""
    return bool(nonce) and hmac.compare_digest(sent, csrf_token(request, nonce or ""))
