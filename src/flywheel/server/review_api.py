"""Review queues over HTTP (the dashboard's review page): the same functions as `flywheel review`.

    GET  /v1/review/queues                      the key's tenant's queues, with progress
    POST /v1/review/queues                      sample a queue (body: kind, n, strategy, overlap, app, since …;
                                                since/until as the CLI takes them: 1717200000, 24h, 2026-06-01)
    GET  /v1/review/queues/{q}                  one queue, its progress and items
    POST /v1/review/queues/{q}/next             {"annotator"} → {"item": …} claimed for review.lock_ttl_s, or null
    POST /v1/review/items/{id}/label            {"annotator", "verdict", "reason"?, "correction"?} → 201
    POST /v1/review/items/{id}/undo             {"annotator"}
    GET  /v1/review/queues/{q}/agreement        κ per pair, Fleiss' κ, Krippendorff's α, disagreements

Keys are tenant-bound: a key sees and builds only its tenant's queues (another tenant's queue or item answers
404 like a missing one); the admin key and an open server see all. Without `annotator` in the body, a key's
name is the annotator.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flywheel.errors import UserError
from flywheel.feedback import queues
from flywheel.server.errors import ApiError
from flywheel.text.when import FORMS_HINT, parse_when

router = APIRouter()



class SampleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    kind: Literal["binary", "pairwise"] = "binary"
    n: int = Field(default=50, ge=1, le=10_000)
    strategy: str = "mixed"
    overlap: int | None = Field(default=None, ge=1, le=100)
    app: str | None = None
    # what `flywheel review create --since/--until` takes: Unix seconds, 24h / 7d, 2026-06-01, an ISO date-time
    since: float | str | None = None
    until: float | str | None = None
    seed: int | None = Field(default=None, ge=0, le=2**62)
    trace_ids: list[str] | None = None
    pairs: list[tuple[str, str]] | None = None


class AnnotatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotator: str | None = None
    skip: list[str] = Field(default_factory=list)


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    annotator: str | None = None
    verdict: str
    reason: str | None = None
    correction: str | None = None


def _tenant(request: Request) -> tuple[Any, str | None]:
    """(state, the tenant the caller is bound to; None for the admin key and an open server)."""
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)
    bound = None if principal.admin or principal.key_id is None else principal.tenant
    return state, bound


def _when(value: float | str | None, param: str, now: float) -> float | None:
    """A `since`/`until` read as `flywheel review create` reads it (flywheel.text.when); 400 naming the field."""
    try:
        seconds = parse_when(value, f"`{param}`", now)
    except UserError as exc:
        raise ApiError(400, f"{exc.message}; {FORMS_HINT}", param=param, code="invalid_value") from None
    return seconds  # a time before 1970 or after 2200 is refused by queues.create_queue


def _annotator(request: Request, given: str | None) -> str:
    if given:
        return given
    principal = request.app.state.flywheel.authenticate(request.headers)
    if principal.key_id is not None:
        return str(principal.name)
    raise ApiError(400, "missing required parameter: 'annotator'", param="annotator", code="missing_required_parameter")


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a queue function off the event loop; its UserErrors become 404 / 409 / 400."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except queues.NotFoundError as exc:
        raise ApiError(404, exc.message, code="not_found") from None
    except queues.ConflictError as exc:
        raise ApiError(409, exc.message, code="conflict", type="conflict_error") from None
    except UserError as exc:
        raise ApiError(400, exc.message, code="invalid_value") from None


def _queue_json(store: Any, queue: queues.Queue) -> dict[str, Any]:
    return {**queue.model_dump(), "progress": queues.progress(store, queue)}


def _owned_item(store: Any, item_id: str, tenant: str | None) -> queues.Item:
    item = queues.get_item(store, item_id)
    if tenant is not None:
        queues.get_queue(store, item.queue_id, tenant=tenant)  # another tenant's item looks missing
    return item


@router.get("/v1/review/queues")
async def list_review_queues(request: Request) -> Any:
    state, tenant = _tenant(request)

    def run() -> list[dict[str, Any]]:
        return [_queue_json(state.store, q) for q in queues.list_queues(state.store, tenant=tenant)]

    return {"object": "list", "data": await _call(run)}


@router.post("/v1/review/queues", status_code=201)
async def create_review_queue(body: SampleIn, request: Request) -> Any:
    state, tenant = _tenant(request)
    overlap = body.overlap or state.project.config.review.overlap
    now = time.time()
    since, until = _when(body.since, "since", now), _when(body.until, "until", now)

    def run() -> dict[str, Any]:
        queue = queues.create_queue(state.store, body.name, kind=body.kind, overlap=overlap, strategy=body.strategy,
                                    n=body.n, app=body.app, since=since, until=until, seed=body.seed,
                                    trace_ids=body.trace_ids, pairs=body.pairs, tenant=tenant)
        return {**_queue_json(state.store, queue), "items": [i.model_dump() for i in queues.items(state.store, queue)]}

    return JSONResponse(await _call(run), status_code=201)


@router.get("/v1/review/queues/{queue}")
async def get_review_queue(queue: str, request: Request) -> Any:
    state, tenant = _tenant(request)

    def run() -> dict[str, Any]:
        found = queues.get_queue(state.store, queue, tenant=tenant)
        return {**_queue_json(state.store, found), "items": [i.model_dump() for i in queues.items(state.store, found)]}

    return await _call(run)


@router.post("/v1/review/queues/{queue}/next")
async def next_review_item(queue: str, body: AnnotatorIn, request: Request) -> Any:
    state, tenant = _tenant(request)
    annotator = _annotator(request, body.annotator)
    ttl = state.project.config.review.lock_ttl_s

    def run() -> dict[str, Any]:
        found = queues.get_queue(state.store, queue, tenant=tenant)
        item = queues.next_item(state.store, found, annotator, lock_ttl_s=ttl, skip=body.skip)
        return {"item": item.model_dump() if item else None, "progress": queues.progress(state.store, found)}

    return await _call(run)


@router.post("/v1/review/items/{item_id}/label", status_code=201)
async def label_review_item(item_id: str, body: LabelIn, request: Request) -> Any:
    state, tenant = _tenant(request)
    annotator = _annotator(request, body.annotator)

    def run() -> dict[str, Any]:
        _owned_item(state.store, item_id, tenant)
        stored = queues.label(state.store, item_id, annotator, body.verdict, reason=body.reason,
                              correction=body.correction)
        return stored.model_dump()

    return JSONResponse(await _call(run), status_code=201)


@router.post("/v1/review/items/{item_id}/undo")
async def undo_review_label(item_id: str, body: AnnotatorIn, request: Request) -> Any:
    state, tenant = _tenant(request)
    annotator = _annotator(request, body.annotator)

    def run() -> dict[str, Any]:
        _owned_item(state.store, item_id, tenant)
        return {"removed": queues.undo(state.store, item_id, annotator).model_dump()}

    return await _call(run)


@router.get("/v1/review/queues/{queue}/agreement")
async def review_agreement(queue: str, request: Request) -> Any:
    state, tenant = _tenant(request)

    def run() -> dict[str, Any]:
        from flywheel.feedback.agreement import agreement_report

        found = queues.get_queue(state.store, queue, tenant=tenant)
        rows = [(lb.item_id, lb.annotator, lb.verdict) for lb in queues.labels(state.store, found)]
        return {"queue": found.name, **dict(agreement_report(rows, n_boot=1000, seed=0))}

    return await _call(run)
