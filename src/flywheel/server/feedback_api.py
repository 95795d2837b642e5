"""POST /v1/feedback: feedback on one trace, with an API key or with the trace's feedback token.

A feedback token (from `POST /v1/apps/{name}`) is safe to hand to a browser: it is bound to one trace, expires,
can only add `source: user` events, and reads nothing (the response is the new event's id). With an API key
the trace must belong to the key's tenant; annotators, checks and judges post with keys.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select

from flywheel import feedback
from flywheel.errors import UserError
from flywheel.server import calls
from flywheel.server.errors import ApiError, from_validation
from flywheel.tracing import tracer

router = APIRouter()


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="thumbs, score, category, comment, correction, copied, regenerated, edited, "
                                  "accepted, rejected, abandoned, followup, label")
    value: Any = None
    comment: str | None = None
    trace_id: str | None = Field(default=None, description="the trace id, or the id of the response "
                                                            "(chatcmpl-…, resp_…, msg_…)")
    span_id: str | None = None
    token: str | None = Field(default=None, description="a feedback token instead of an API key")
    source: str = "user"
    actor: str | None = None


def _trace_tenant(store: Any, trace_id: str) -> tuple[bool, str | None]:
    table = store.table("traces")
    for attempt in range(2):
        with store.connect() as conn:
            row = conn.execute(select(table.c.tenant).where(table.c.trace_id == trace_id)).first()
        if row is not None:
            return True, row[0]
        if attempt == 0:
            tracer.flush()  # the trace may still be in the writer's queue
    return False, None


def _authenticate_bad_body(state: Any, request: Request, raw: bytes) -> None:
    """Before a bad body's 400, the caller must hold a valid feedback token (header or body) or API key: an
    unauthenticated client learns nothing about validation."""
    token = request.headers.get("x-flywheel-feedback-token")
    if not token:
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        token = data.get("token") if isinstance(data, dict) else None
    if not isinstance(token, str) or not token:
        state.authenticate(request.headers)
    elif state.signer.verify(token) is None:
        raise ApiError(401, "invalid or expired feedback token", param="token", code="invalid_feedback_token")


@router.post("/v1/feedback", status_code=201, openapi_extra=calls.body_schema(FeedbackIn))
async def post_feedback(request: Request) -> Any:
    state = request.app.state.flywheel
    raw = await request.body()
    try:
        body = FeedbackIn.model_validate_json(raw)
    except ValidationError as exc:
        _authenticate_bad_body(state, request, raw)
        raise from_validation([dict(e) for e in exc.errors(include_url=False)]) from None
    if body.trace_id is not None and not body.trace_id.strip():
        body.trace_id = None  # "" is a missing id (400 below), not a lookup of trace "" (a 404 "no trace ")
    if body.trace_id is not None:  # the response id the SDK handed the frontend names its trace too
        body.trace_id = feedback.trace_id_of(body.trace_id)
    token = body.token or request.headers.get("x-flywheel-feedback-token")
    if token:
        trace_id = state.signer.verify(token)
        if trace_id is None:
            raise ApiError(401, "invalid or expired feedback token", param="token", code="invalid_feedback_token")
        if body.trace_id is not None and body.trace_id != trace_id:
            raise ApiError(403, "this feedback token is for another trace", param="trace_id",
                           code="token_trace_mismatch")
        if body.source != "user":
            raise ApiError(403, "a feedback token can only add user feedback", param="source",
                           code="source_not_allowed")
        _, tenant = await asyncio.to_thread(_trace_tenant, state.store, trace_id)
        actor = body.actor
    else:
        principal = state.authenticate(request.headers)
        if body.trace_id is None:
            raise ApiError(400, "missing required parameter: 'trace_id' (or send a feedback `token`)",
                           param="trace_id", code="missing_required_parameter")
        trace_id = body.trace_id
        found, tenant = await asyncio.to_thread(_trace_tenant, state.store, trace_id)
        mine = principal.admin or principal.key_id is None or tenant == principal.tenant
        if not found or not mine:  # another tenant's trace looks exactly like a missing one
            raise ApiError(404, f"no trace {trace_id}", param="trace_id", code="trace_not_found")
        actor = body.actor or principal.name
    try:
        event = await asyncio.to_thread(
            feedback.record, state.store, trace_id, body.name, body.value, source=body.source,
            span_id=body.span_id, comment=body.comment, actor=actor, tenant=tenant)
    except UserError as exc:
        raise ApiError(400, exc.message, param=getattr(exc, "field", None), code="invalid_value") from None
    return JSONResponse({"id": event.id, "trace_id": trace_id, "name": event.name}, status_code=201)
