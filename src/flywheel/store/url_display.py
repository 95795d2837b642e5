"""A store URL safe to print, shown the way the user wrote it: only a real password is replaced by ***.

SQLAlchemy's `render_as_string(hide_password=True)` rebuilds the URL: an empty password (`postgres:@`, what
pgserver and many local setups use) turns into `***` as if there were a secret, a unix-socket host
(`?host=/tmp/pg`) comes back percent-encoded (`%2Ftmp%2Fpg`), and a `?password=` query parameter is printed in
clear. `display_url` keeps the text as written and masks the password in the user info and any query parameter
whose name holds "password" (`password`, `sslpassword`), when they are not empty."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

# the user info as SQLAlchemy's URL parser reads it: scheme://USER:PASSWORD@ (the password up to the first '@')
_USERINFO = re.compile(r"(?P<head>[\w+]+://[^:/]*:)(?P<password>[^@]*)@")


def display_url(url: str) -> str:
    """`url` as written, its non-empty passwords shown as ***; an unparsable URL is shown as its scheme only."""
    from sqlalchemy.engine import make_url

    raw = url.strip()
    try:
        make_url(raw)
    except Exception:  # noqa: BLE001 - whatever does not parse might hold a password anywhere
        return raw.split("://", 1)[0] + "://…"
    rest_at = 0
    match = _USERINFO.match(raw)
    if match is not None:
        password = "***" if match["password"] else ""
        raw = f"{match['head']}{password}@{raw[match.end():]}"
        rest_at = len(match["head"]) + len(password) + 1
    query_at = raw.find("?", rest_at)
    if query_at < 0:
        return raw
    return raw[:query_at + 1] + "&".join(_mask_parameter(p) for p in raw[query_at + 1:].split("&"))


def _mask_parameter(part: str) -> str:
    key, sep, value = part.partition("=")
    return f"{key}=***" if sep and value and "password" in unquote_plus(key).lower() else part
