"""`GET /`, the address `flywheel serve` prints. A browser (Accept: text/html) is sent on to the dashboard (307 to
/ui, which asks for a login when keys are required); an API client gets a small JSON index of where things are.

Its links are the public addresses every client may know (/healthz, /readyz and /openapi.json answer without a
key too); the version is left out for a caller without a valid key when keys are required."""

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
    # base_url: what an OpenAI / Anthropic SDK is given (not a route itself); models needs a key when keys are
    index["links"] = {"base_url": f"{base}/v1", "models": f"{base}/v1/models", "ui": f"{base}/ui",
                      "health": f"{base}/healthz", "ready": f"{base}/readyz", "openapi": f"{base}/openapi.json"}
    return JSONResponse(index)
