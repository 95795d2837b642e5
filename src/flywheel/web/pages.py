"""What every dashboard route does first: find the viewer (or send them to log in), read a form body."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from flywheel.web import i18n
from flywheel.web.auth import Viewer, csrf_ok, prepare_csrf, viewer_of
from flywheel.web.render import not_found, render, split_format


def gate(request: Request, fmt: str = "html") -> Viewer | Response:
    """The viewer, or the response to send instead: a redirect to the login page (HTML) or a 401 (twins)."""
    prepare_csrf(request)
    viewer = viewer_of(request)
    if viewer is None:
        if request.headers.get("hx-request") == "true":
            # a key pressed on a page whose session expired: HTMX does not swap a 401, so without this the page
            # would just stop answering; HX-Redirect sends the whole page to the login form, then back
            page = urlsplit(request.headers.get("hx-current-url", ""))
            target = safe_next(page.path + (f"?{page.query}" if page.query else ""))
            return Response(status_code=401, headers={"HX-Redirect": _login_url(request, target)})
        if fmt != "html":
            return JSONResponse({"error": {"message": "log in at /ui/login or send `Authorization: Bearer <key>`",
                                           "code": "login_required"}}, status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(_login_url(request, target), status_code=303)
    request.scope["flywheel.viewer"] = viewer
    return viewer


def _login_url(request: Request, target: str) -> str:
    """The login page that returns to `target`, in the language the visitor asked for with ?lang= (the page they
    wanted never rendered, so the fw_lang cookie was not set)."""
    url = f"/ui/login?next={quote(target, safe='')}"
    lang = request.query_params.get("lang")
    return url + (f"&lang={lang}" if lang in i18n.LANGS else "")


async def form_of(request: Request) -> dict[str, str]:
    """A urlencoded form body (read raw: the server's middleware relabels form posts as JSON for `curl -d`)."""
    body = (await request.body()).decode("utf-8", "replace")
    return dict(parse_qsl(body, keep_blank_values=True))


async def posted(request: Request, fmt: str = "html") -> tuple[Viewer, dict[str, str]] | Response:
    """What every dashboard POST checks first: the viewer (else a login redirect or 401) and the CSRF token of
    its form (else a 403 page); returns (viewer, form) or the response to send instead."""
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    form = await form_of(request)
    if not csrf_ok(request, form):
        return bad_csrf(request)
    return viewer, form


def bad_csrf(request: Request) -> Response:
    return render(request, "error.html", status=403, title="403", message="bad_csrf")


def tenant_may_see(viewer: Viewer, tenant: Any) -> bool:
    return not viewer.scoped or tenant == viewer.tenant


def safe_next(target: str | None) -> str:
    """Only a local dashboard path: a login link must not redirect to another site."""
    if target and target.startswith("/ui") and not target.startswith("//"):
        return target
    return "/ui/traces"


def unknown_page(request: Request) -> Response:
    """GET of an address under /ui that no page answers: the 404 page (JSON for a `.json` address)."""
    fmt = split_format(request.url.path)[1]
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    return not_found(request, f"no page {request.url.path}", fmt)
