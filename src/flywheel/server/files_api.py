"""The OpenAI Files API (`client.files.*`) on `flywheel serve`, for the Batch API (batches_api.py):

    POST   /v1/files                 upload (multipart: file, purpose=batch, optional expires_after[anchor|seconds])
    GET    /v1/files                 list (purpose, limit 1-10,000, order desc | asc, after)
    GET    /v1/files/{id}            retrieve
    DELETE /v1/files/{id}            delete
    GET    /v1/files/{id}/content    the bytes

Files are kept in the store (batches_store.py) and belong to the caller's tenant. Uploads are JSONL batch input
(`purpose: batch`, UTF-8, at most 200 MB and the server's body limit `server.max_body_mb`); the batch output and
error files are `batch_output`. A file is checked line by line when a batch is created from it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from flywheel.server import batches_store, calls
from flywheel.server.errors import ApiError, page_query

router = APIRouter()
ROUTE = "/v1/files"
UPLOAD_PURPOSES = ("batch",)
MAX_FILE_BYTES = 200 * 1024 * 1024  # OpenAI's limit for a batch input file
# expires_after.seconds bounds, as OpenAI: one hour to thirty days
EXPIRES_MIN_S, EXPIRES_MAX_S = 3600, 30 * 86400
MAX_LIST = 10_000  # files a page of GET /v1/files, as OpenAI (rows without their bytes)


def caller(request: Request) -> tuple[Any, str]:
    """(server state, the caller's tenant); the key is checked first."""
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)
    return state, calls.resolve_tenant(principal, request.headers.get("x-flywheel-tenant"))


@router.post(ROUTE)
async def upload(request: Request) -> Any:
    state, tenant = caller(request)
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise ApiError(400, "upload a file as multipart/form-data with fields `file` and `purpose` "
                       "(the OpenAI SDK's files.create does)", param="file", code="invalid_request")
    form = await request.form(max_files=1, max_fields=10, max_part_size=MAX_FILE_BYTES)
    purpose = form.get("purpose")
    if not isinstance(purpose, str) or purpose not in UPLOAD_PURPOSES:
        raise ApiError(400, f"purpose must be one of {', '.join(UPLOAD_PURPOSES)} (flywheel keeps files for the Batch "
                       f"API), got {purpose!r}", param="purpose", code="invalid_value")
    upload_file = form.get("file")
    if upload_file is None or isinstance(upload_file, str):
        raise ApiError(400, "missing required parameter: 'file' (a file part of the multipart body)", param="file",
                       code="missing_required_parameter")
    content = await upload_file.read()
    if not content:
        raise ApiError(400, "the file is empty; a batch input file holds one JSON request per line", param="file",
                       code="invalid_value")
    if len(content) > MAX_FILE_BYTES:
        raise ApiError(400, f"the file is larger than {MAX_FILE_BYTES // 2**20} MB; split it into several batches",
                       param="file", code="file_too_large")
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"the file is not UTF-8 text (byte {exc.start}); a batch input file is JSONL in UTF-8",
                       param="file", code="invalid_value") from None
    now = state.clock()
    expires_at = _expires_at(form, now)
    row = await asyncio.to_thread(batches_store.add_file, state.store, tenant, purpose,
                                  upload_file.filename or "upload.jsonl", content, now, expires_at)
    return batches_store.file_payload(row)


def _expires_at(form: Any, now: float) -> float | None:
    anchor, seconds = form.get("expires_after[anchor]"), form.get("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if anchor != "created_at":
        raise ApiError(400, f"expires_after.anchor must be 'created_at', got {anchor!r}", param="expires_after.anchor",
                       code="invalid_value")
    if not isinstance(seconds, str) or not seconds.isdigit() or not EXPIRES_MIN_S <= int(seconds) <= EXPIRES_MAX_S:
        raise ApiError(400, f"expires_after.seconds must be a whole number from {EXPIRES_MIN_S} to {EXPIRES_MAX_S}, "
                       f"got {seconds!r}", param="expires_after.seconds", code="invalid_value")
    return now + int(seconds)


@router.get(ROUTE)
async def list_files(request: Request) -> Any:
    state, tenant = caller(request)
    query = request.query_params
    limit = query.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIST:
        raise ApiError(400, f"limit must be a whole number from 1 to {MAX_LIST:,}, got {limit!r}", param="limit",
                       code="invalid_value")
    # the page is as long as asked, as on OpenAI: a caller reading `.data` without following `has_more` gets it all
    size, order = int(limit), page_query({"order": query.get("order", "desc")})[1]
    rows, more = await asyncio.to_thread(batches_store.list_files, state.store, tenant, state.clock(),
                                         purpose=query.get("purpose") or None, limit=size, order=order,
                                         after=query.get("after") or None)
    data = [batches_store.file_payload(r) for r in rows]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": more}


@router.get(ROUTE + "/{file_id}")
async def retrieve(file_id: str, request: Request) -> Any:
    state, tenant = caller(request)
    row = await asyncio.to_thread(batches_store.get_file, state.store, tenant, file_id, state.clock())
    return batches_store.file_payload(row)


@router.delete(ROUTE + "/{file_id}")
async def delete(file_id: str, request: Request) -> Any:
    state, tenant = caller(request)
    await asyncio.to_thread(batches_store.delete_file, state.store, tenant, file_id, state.clock())
    return {"id": file_id, "object": "file", "deleted": True}


@router.get(ROUTE + "/{file_id}/content")
async def content(file_id: str, request: Request) -> Any:
    state, tenant = caller(request)
    row = await asyncio.to_thread(batches_store.get_file, state.store, tenant, file_id, state.clock(), content=True)
    return Response(bytes(row["content"]), media_type="application/jsonl")
