"""Rendering for the dashboard: the Jinja2 environment, page context (language, viewer, CSRF token), the `.json`
and `.csv` twins of list pages, and the HTML error page."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from flywheel.tracing.store_sink import choice_outputs, with_reasoning  # the one reading rule: CLI and pages
from flywheel.web import i18n

HERE = Path(__file__).parent
_env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                   trim_blocks=True, lstrip_blocks=True)


def when(ts: float | None) -> str:
    """A stored time as pages show it: in UTC, and saying so (the filters read a time without a zone as UTC)."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.0f} ms" if value < 1000 else f"{value / 1000:.1f} s"


def usd(value: float | None) -> str:
    if not value:
        return "0"
    return f"{value:.4f}" if value >= 0.001 else f"{value:.6f}"


def size(n: int | None) -> str:
    if not n:
        return "0 B"
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


def pretty(value: Any) -> str:
    """A span body as readable text: strings as they are, everything else as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def _stored(name: str, catalog: str = "stored_i18n") -> Any:
    """A filter that shows a text the core built in English in the page's language: `{{ text|NAME(lang) }}`."""

    def shown(text: str | None, lang: str) -> str:
        import importlib

        return str(getattr(importlib.import_module(f"flywheel.web.{catalog}"), name)(lang, text))

    return shown


_env.filters.update(when=when, ms=ms, usd=usd, size=size, pretty=pretty, with_reasoning=with_reasoning,
                    choice_outputs=choice_outputs,
                    alert_text=_stored("alert_text"),
                    bound_text=_stored("bound_text"), error_text=_stored("error_text"),
                    reason_text=_stored("reason_text", "reason_i18n"))


def qs(params: dict[str, Any], **changes: Any) -> str:
    """A querystring from `params` with `changes` applied (None removes a key)."""
    merged = {**params, **changes}
    return urlencode({k: v for k, v in merged.items() if v not in (None, "")})


_env.globals["qs"] = qs


# Every dashboard HTML response: scripts only from /ui/static (an answer, a comment or a span body that slipped
# through escaping still cannot run), no framing by another site (a labelling page cannot be click-jacked), and
# no copy kept by the browser (Back after logging out asks the server, which asks for a login, instead of showing
# the traces again). Inline styles stay allowed: the waterfall and the meters are sized with style="width: …%".
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "x-frame-options": "DENY", "x-content-type-options": "nosniff", "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """The template with the page context every page has: `t` (UI text), `lang`, `viewer`, `csrf`, `path`."""
    from flywheel.web.auth import csrf_token, ensure_csrf_cookie

    lang = language(request)
    nonce = request.scope.get("flywheel.csrf_nonce") or request.cookies.get("fw_csrf")
    from flywheel.web import NAV

    context = _localized(lang, context)

    body = _env.get_template(template).render(
        request=request, nav=NAV, t=i18n.Translator(lang), lang=lang, other_lang="en" if lang == "zh" else "zh",
        viewer=request.scope.get("flywheel.viewer"), csrf=csrf_token(request, nonce) if nonce else "",
        path=request.url.path, query=dict(request.query_params), **context)
    response = HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)
    if request.query_params.get("lang") in i18n.LANGS:
        response.set_cookie(i18n.COOKIE, lang, max_age=365 * 86400, samesite="lax")
    ensure_csrf_cookie(request, response)
    return response


def fragment(request: Request, template: str, **context: Any) -> HTMLResponse:
    """A piece of a page for HTMX (no layout, no cookies)."""
    lang = language(request)
    body = _env.get_template(template).render(request=request, t=i18n.Translator(lang), lang=lang,
                                              viewer=request.scope.get("flywheel.viewer"),
                                              **_localized(lang, context))
    return HTMLResponse(body, headers=SECURITY_HEADERS)  # a fragment's address opened in a tab is a page too


def _localized(lang: str, context: dict[str, Any]) -> dict[str, Any]:
    """The page's messages (`errors` {field: why}, `error`, `message`) in its language where they are known
    English texts (flywheel.web.message_i18n); the JSON twins keep the English ones."""
    from flywheel.web.message_i18n import localize, localize_all

    out = dict(context)
    if isinstance(out.get("errors"), dict):
        out["errors"] = localize_all(lang, out["errors"])
    for key in ("error", "message"):
        if isinstance(out.get(key), str):
            out[key] = localize(lang, out[key])
    return out


def language(request: Request) -> str:
    return i18n.choose(request.query_params.get("lang"), request.cookies.get(i18n.COOKIE),
                       request.headers.get("accept-language"))


def not_found(request: Request, what: str, fmt: str = "html") -> Response:
    """The 404 page (or JSON) that says what was not found: in the page's language on a page, in English in JSON."""
    from flywheel.web.message_i18n import localize

    if fmt == "fragment":
        return HTMLResponse(f'<p class="invalid">{html.escape(localize(language(request), what))}</p>',
                            status_code=404, headers=SECURITY_HEADERS)
    if fmt != "html":
        return JSONResponse({"error": {"message": what, "code": "not_found"}}, status_code=404)
    return render(request, "error.html", status=404, title=i18n.Translator(language(request))("not_found"),
                  message=what)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def as_json(rows: list[dict[str, Any]], **extra: Any) -> JSONResponse:
    return JSONResponse({"rows": [{k: _plain(v) for k, v in r.items()} for r in rows], **extra},
                        status_code=400 if extra.get("errors") else 200)


def as_csv(rows: list[dict[str, Any]], columns: Iterable[str], filename: str, status: int = 200) -> Response:
    # a byte-order mark first: Excel reads a CSV without one in the system's code page (GBK on a Chinese
    # Windows), which garbles every Chinese question; csv readers and pandas take "utf-8-sig" as plain UTF-8
    buf = io.StringIO()
    buf.write("\ufeff")
    cols = list(columns)
    out = csv.writer(buf)
    out.writerow(cols)
    for r in rows:
        out.writerow([_csv_cell(r.get(c)) for c in cols])
    return Response(buf.getvalue(), status_code=status, media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{filename}"'})


def _csv_cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value  # a spreadsheet must not run a formula from a question (a tab or CR first still runs one)
    return "" if value is None else value


def split_format(name: str) -> tuple[str, str]:
    """("abc", "json") from "abc.json"; ("abc", "html") otherwise."""
    for fmt in ("json", "csv"):
        if name.endswith("." + fmt):
            return name[: -len(fmt) - 1], fmt
    return name, "html"
