"""The web dashboard under /ui, served by `flywheel serve` in the same process: server-rendered Jinja2 pages with
HTMX (vendored in static/, no CDN), every page's state in its URL, a `.json` and `.csv` twin of every list.

    from flywheel import web
    web.mount(app, state)      # in flywheel.server.app.create_app, after the API routers

Pages live in one module each (traces.py, sessions.py …), each with an APIRouter listed in PAGES; docs/dashboard.md
says how to add one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

HERE = Path(__file__).parent

PAGES = ["flywheel.web.login", "flywheel.web.traces", "flywheel.web.sessions", "flywheel.web.review_pages",
         "flywheel.web.eval_pages", "flywheel.web.metrics_pages", "flywheel.web.monitor_pages",
         "flywheel.web.prompt_pages", "flywheel.web.playground"]
NAV: list[tuple[str, str]] = [("traces", "/ui/traces"), ("sessions", "/ui/sessions"), ("users", "/ui/users"),
                              ("review", "/ui/review"), ("evals", "/ui/evals"), ("metrics", "/ui/metrics"),
                              ("monitors", "/ui/monitors"), ("prompts", "/ui/prompts"),
                              ("playground", "/ui/playground")]


def mount(app: FastAPI, state: Any = None) -> None:
    """Add the dashboard's routes and its static files (/ui/static) to `app` (the state is app.state.flywheel)."""
    import importlib

    if any(getattr(route, "name", None) == "ui-static" for route in app.routes):
        return  # already mounted (create_app does it; a caller may too)
    for name in PAGES:
        app.include_router(importlib.import_module(name).router)
    app.mount("/ui/static", StaticFiles(directory=HERE / "static"), name="ui-static")
    from flywheel.web.pages import unknown_page

    # last: any other /ui address is the dashboard's own 404 page, in the viewer's language (not the API's JSON)
    app.add_api_route("/ui/{rest:path}", unknown_page, methods=["GET"], include_in_schema=False)


def add_page(module: str, nav: tuple[str, str] | None = None) -> None:
    """Register another page module (and, optionally, its navigation entry: (i18n key, path)) before `mount`."""
    if module not in PAGES:
        PAGES.append(module)
    if nav is not None and nav not in NAV:
        NAV.append(nav)
