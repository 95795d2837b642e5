"""/ui/login, /ui/logout and /favicon.ico (none)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from flywheel.web.auth import csrf_ok, is_open, login, prepare_csrf, set_session, would_be_open
from flywheel.web.pages import bad_csrf, form_of, safe_next
from flywheel.web.render import render

router = APIRouter()


@router.get("/ui/login", include_in_schema=False)
def login_page(request: Request) -> Response:
    prepare_csrf(request)
    if is_open(request):
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    if would_be_open(request):  # open, but asked for by another name: there is no key to log in with
        return render(request, "error.html", status=403, title="403", message="local_only")
    return render(request, "login.html", next=safe_next(request.query_params.get("next")), failed=False)


@router.post("/ui/login", include_in_schema=False)
async def login_submit(request: Request) -> Response:
    prepare_csrf(request)
    form = await form_of(request)
    target = safe_next(form.get("next"))
    if not csrf_ok(request, form):
        return bad_csrf(request)
    session = login(request, form.get("key", ""))
    if session is None:
        return render(request, "login.html", status=401, next=target, failed=True)
    response = RedirectResponse(target, status_code=303)
    set_session(request, response, session)
    return response


@router.post("/ui/logout", include_in_schema=False)
async def logout(request: Request) -> Response:
    prepare_csrf(request)
    form = await form_of(request)
    if not csrf_ok(request, form):
        return bad_csrf(request)
    response = RedirectResponse("/ui/login", status_code=303)
    set_session(request, response, None)
    return response


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> Response:
    """No icon, and no 404 in the log: a browser asks for /favicon.ico when it shows a `.json` twin (the HTML
    pages declare an empty icon in base.html, so they never ask)."""
    return Response(status_code=204, headers={"cache-control": "public, max-age=86400"})
