"""/ui/sessions (conversations grouped by session_id), /ui/sessions/{id} (its turns in order) and /ui/users
(end users by user_id), each list with its .json/.csv twin."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flywheel.errors import UserError
from flywheel.tracing.search import parse_time, search_sessions, session_turns, top_users
from flywheel.web.auth import Viewer
from flywheel.web.pages import gate
from flywheel.web.render import as_csv, as_json, not_found, render, split_format

router = APIRouter()
SESSION_COLUMNS = ("session_id", "user_id", "turns", "first_at", "last_at", "cost_usd", "errors")
USERS_SHOWN = 200  # the most recently active; the traces page's user filter finds any other
TURNS_SHOWN = 1000  # a session's latest turns; the traces list filtered by session_id pages through the rest
USER_COLUMNS = ("user_id", "traces", "sessions", "last_at", "cost_usd")
TURN_COLUMNS = ("trace_id", "started_at", "status", "latency_ms", "cost_usd", "user_id", "input_preview",
                "output_preview")


@router.get("/ui/sessions", include_in_schema=False)
@router.get("/ui/sessions.json", include_in_schema=False)
@router.get("/ui/sessions.csv", include_in_schema=False)
def sessions_page(request: Request) -> Response:
    fmt = split_format(request.url.path)[1]
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    errors: dict[str, str] = {}
    user_id = request.query_params.get("user_id") or None
    since = None
    try:
        since = parse_time(request.query_params.get("since") or None)
    except ValueError as exc:
        errors["since"] = str(exc)
    cursor = request.query_params.get("cursor") or None
    store = request.app.state.flywheel.store
    try:
        page = search_sessions(store, tenant=viewer.tenant, user_id=user_id, since=since, cursor=cursor)
    except UserError as exc:
        errors["cursor"] = exc.message
        page = search_sessions(store, tenant=viewer.tenant, user_id=user_id, since=since)
    filters = {k: v for k, v in request.query_params.items() if k in ("user_id", "since") and v}
    next_url = f"{request.url.path}?{urlencode({**filters, 'cursor': page.next_cursor})}" if page.next_cursor else None
    if fmt == "json":
        return as_json(page.rows, next_cursor=page.next_cursor, next=next_url, errors=errors)
    if fmt == "csv":
        return as_csv(page.rows, SESSION_COLUMNS, "sessions.csv")
    return render(request, "sessions.html", status=400 if errors else 200, rows=page.rows, errors=errors,
                  filters=filters, next_url=next_url)


@router.get("/ui/users", include_in_schema=False)
@router.get("/ui/users.json", include_in_schema=False)
@router.get("/ui/users.csv", include_in_schema=False)
def users_page(request: Request) -> Response:
    fmt = split_format(request.url.path)[1]
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    rows = top_users(request.app.state.flywheel.store, tenant=viewer.tenant, limit=USERS_SHOWN)
    if fmt == "json":
        return as_json(rows)
    if fmt == "csv":
        return as_csv(rows, USER_COLUMNS, "users.csv")
    return render(request, "users.html", rows=rows, capped=len(rows) >= USERS_SHOWN, shown=USERS_SHOWN)


@router.get("/ui/sessions/{session_ref}", include_in_schema=False)
def session_page(request: Request, session_ref: str) -> Response:
    session_id, fmt = split_format(session_ref)
    viewer = gate(request, fmt)
    if not isinstance(viewer, Viewer):
        return viewer
    store = request.app.state.flywheel.store
    turns = session_turns(store, session_id, tenant=viewer.tenant, limit=TURNS_SHOWN + 1)
    if not turns:
        return not_found(request, f"no session with id '{session_id}'", fmt)
    capped = len(turns) > TURNS_SHOWN  # one more than shown was read, to know
    turns = turns[-TURNS_SHOWN:]
    every_turn = f"/ui/traces?{urlencode({'session_id': session_id})}"
    if fmt == "json":
        return as_json(turns, session_id=session_id, capped=capped, all_turns=every_turn)
    if fmt == "csv":
        return as_csv(turns, TURN_COLUMNS, "session.csv")
    return render(request, "session.html", session_id=session_id, turns=turns, capped=capped, shown=TURNS_SHOWN,
                  every_turn=every_turn)
