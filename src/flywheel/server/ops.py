"""Operations routes: /healthz, /readyz (store reachable), /metrics (Prometheus), and key management for the
admin key (FLYWHEEL_ADMIN_KEY): GET/POST /v1/keys, DELETE /v1/keys/{name}."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from flywheel.errors import UserError
from flywheel.server.errors import ApiError
from flywheel.server.metrics import CONTENT_TYPE_LATEST

router = APIRouter()


@router.get("/healthz")
async def healthz() -> Any:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> Any:
    store = request.app.state.flywheel.store

    def ping() -> None:
        with store.connect() as conn:
            conn.execute(text("SELECT 1"))

    try:
        await asyncio.to_thread(ping)
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        return JSONResponse({"status": "unavailable", "store": f"{type(exc).__name__}"}, status_code=503)
    return {"status": "ready", "store": store.dialect}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(request.app.state.flywheel.metrics.render(), media_type=CONTENT_TYPE_LATEST)


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    tenant: str = "default"
    models: list[str] | None = None
    apps: list[str] | None = None
    budget_usd: float | None = Field(default=None, ge=0)
    budget_period: str = "month"
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)


def _admin(request: Request) -> Any:
    state = request.app.state.flywheel
    if not state.admin_key:
        raise ApiError(403, "key management over HTTP needs FLYWHEEL_ADMIN_KEY set on the server",
                       code="admin_disabled")
    if not state.authenticate(request.headers).admin:
        raise ApiError(403, "only the admin key manages keys", code="admin_only")
    return state


@router.get("/v1/keys")
async def list_keys(request: Request) -> Any:
    return {"object": "list", "data": _admin(request).keys.list()}


@router.post("/v1/keys", status_code=201)
async def create_key(body: KeyIn, request: Request) -> Any:
    state = _admin(request)
    try:
        key, row = await asyncio.to_thread(lambda: state.keys.create(**body.model_dump()))
    except UserError as exc:
        raise ApiError(400, exc.message, code="invalid_value") from None
    return {"key": key, **row}


@router.delete("/v1/keys/{name}")
async def revoke_key(name: str, request: Request) -> Any:
    state = _admin(request)
    if not await asyncio.to_thread(state.keys.revoke, name):
        raise ApiError(404, f"no active key named {name!r}", param="name", code="key_not_found")
    return {"revoked": name}
