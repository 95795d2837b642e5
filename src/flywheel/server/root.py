"""`GET /`, the address `flywheel serve` prints. A browser (Accept: text/html) is sent on to the dashboard (307 to
/ui, which asks for a login when keys are required); an API client gets a small JSON index of where things are.

Its links are the addresses every client may know (/healthz and /readyz answer without a key); the version is left
out for a caller without a valid key when keys are required.

`GET /openapi.json` (every route, and the version) asks for a key when keys are required, like /v1: a caller
without one learns nothing about the deployment that the probes do not already tell."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from flywheel.server.errors import ApiError

router = APIRouter()


@router.get("/", include_in_schema=False)
async def root(request: Request) -> Response:
    prefix = str(request.scope.get("root_path", "")).rstrip("/")
    if "text/html" in request.headers.get("accept", ""):
        return RedirectResponse(f"{prefix}/ui", status_code=307)
    from flywheel.server.app import _version

    base = str(request.base_url).rstrip("/")
    index: dict[str, Any] = {"name": "flywheel"}
    try:
        request.app.state.flywheel.authenticate(request.headers)
    except ApiError:
        pass
    else:
        index["version"] = _version()
    # base_url: what an OpenAI / Anthropic SDK is given (not a route itself); models and openapi need a key when
    # keys are required
    index["links"] = {"base_url": f"{base}/v1", "models": f"{base}/v1/models", "ui": f"{base}/ui",
                      "health": f"{base}/healthz", "ready": f"{base}/readyz", "openapi": f"{base}/openapi.json"}
    return JSONResponse(index)


@router.get("/openapi.json", include_in_schema=False)
async def openapi(request: Request) -> Response:
    request.app.state.flywheel.authenticate(request.headers)  # ApiError → 401, as on /v1
    schema = request.app.openapi()
    prefix = str(request.scope.get("root_path", "")).rstrip("/")
    if prefix and prefix not in {s.get("url") for s in schema.get("servers", [])}:  # behind a path prefix
        schema = {**schema, "servers": [{"url": prefix}, *schema.get("servers", [])]}
    return JSONResponse(schema)
