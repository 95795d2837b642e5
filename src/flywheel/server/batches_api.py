"""The OpenAI Batch API (`client.batches.*`) on `flywheel serve`:

    POST /v1/batches              create {input_file_id, endpoint, completion_window: "24h", metadata}
    GET  /v1/batches              list (limit 1-100, after), newest first
    GET  /v1/batches/{id}         retrieve (status, request_counts, usage, output_file_id, error_file_id)
    POST /v1/batches/{id}/cancel  cancel: no new request starts; in_progress → cancelling → cancelled

The input file (files_api.py) is checked line by line when the batch is created: each line is
`{"custom_id", "method": "POST", "url": <the endpoint>, "body"}` with a unique custom_id and a body that the
endpoint accepts, naming a model the caller's key may use. The first bad line is a 400 naming its line number
and field, and no batch is made. The requests then run in the background (batches_runner.py) through the same
route code a live request takes, as the key that created the batch.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flywheel.server import batches_store, calls
from flywheel.server.conversations_store import check_metadata
from flywheel.server.errors import ApiError, from_validation, page_query
from flywheel.server.files_api import caller
from flywheel.server.keys import Principal
from flywheel.text.lines import split_lines

router = APIRouter()
ROUTE = "/v1/batches"
MAX_REQUESTS = 50_000  # per batch, as OpenAI
WINDOWS = {"24h": 86400.0}
LINE_KEYS = ("custom_id", "method", "url", "body")


def endpoint_models() -> dict[str, type[BaseModel]]:
    """The request body model of each endpoint a batch may target."""
    from flywheel.server.models_api import EmbeddingsIn
    from flywheel.server.openai_proxy import ChatCompletionIn, CompletionIn
    from flywheel.server.responses_wire import ResponsesIn

    return {"/v1/chat/completions": ChatCompletionIn, "/v1/embeddings": EmbeddingsIn, "/v1/responses": ResponsesIn,
            "/v1/completions": CompletionIn}


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_file_id: str = Field(min_length=1, max_length=64)
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None = None
    output_expires_after: dict[str, Any] | None = None


@router.post(ROUTE, openapi_extra=calls.body_schema(BatchIn))
async def create(request: Request) -> Any:
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)
    tenant = calls.resolve_tenant(principal, request.headers.get("x-flywheel-tenant"))
    body = await calls.read_body(request, BatchIn)
    models = endpoint_models()
    if body.endpoint not in models:
        raise ApiError(400, f"endpoint {body.endpoint!r} is not supported for batches; use one of "
                       f"{', '.join(models)}", param="endpoint", code="invalid_value")
    if body.completion_window not in WINDOWS:
        raise ApiError(400, f"completion_window must be '24h', got {body.completion_window!r}",
                       param="completion_window", code="invalid_value")
    if body.output_expires_after is not None:
        # refused, not ignored: a caller asking for the results to be deleted must not find them kept
        raise ApiError(400, "output_expires_after is not supported: flywheel keeps a batch's output and error files "
                       "until you delete them (client.files.delete); leave it out", param="output_expires_after",
                       code="unsupported_parameter")
    meta = check_metadata(body.metadata)
    now = state.clock()
    row = await asyncio.to_thread(batches_store.get_file, state.store, tenant, body.input_file_id, now,
                                  content=True, param="input_file_id")
    if row["purpose"] != "batch":
        raise ApiError(400, f"file {body.input_file_id!r} has purpose {row['purpose']!r}; a batch reads a file "
                       "uploaded with purpose 'batch'", param="input_file_id", code="invalid_value")
    lines = await asyncio.to_thread(parse_lines, state, principal, body.endpoint, models[body.endpoint],
                                    bytes(row["content"]))
    first_model = lines[0].body.get("model")
    model = first_model if all(ln.body.get("model") == first_model for ln in lines) else None
    bid = await asyncio.to_thread(batches_store.create_batch, state.store, principal=principal, tenant=tenant,
                                  endpoint=body.endpoint, input_file_id=body.input_file_id,
                                  window_s=WINDOWS[body.completion_window], meta=meta, model=model, lines=lines,
                                  now=now)
    runner = getattr(request.app.state, "batch_runner", None)
    if runner is not None:
        runner.wake()
    return await _payload(state, bid, tenant)


def parse_lines(state: Any, principal: Principal, endpoint: str, model: type[BaseModel],
                content: bytes) -> list[batches_store.Line]:
    """The file's requests, each checked as its endpoint would check it; the first bad line is a 400 that names
    its number and field."""
    lines: list[batches_store.Line] = []
    seen: dict[str, int] = {}
    # a leading byte-order mark (Windows editors) is skipped
    for number, raw in enumerate(split_lines(content.decode("utf-8-sig")), start=1):
        if not raw.strip():
            continue
        if len(lines) >= MAX_REQUESTS:
            raise _bad(number, None, f"a batch holds at most {MAX_REQUESTS} requests; split the file")
        try:
            item = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _bad(number, None, f"not valid JSON: {exc.msg} (column {exc.colno})", "invalid_json_line") from None
        if not isinstance(item, dict):
            raise _bad(number, None, "a line must be a JSON object {custom_id, method, url, body}")
        for key in item:
            if key not in LINE_KEYS:
                raise _bad(number, key, f"unrecognized field {key!r}; a line has {', '.join(LINE_KEYS)}")
        custom_id = item.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id or len(custom_id) > 512:
            raise _bad(number, "custom_id", "custom_id must be a non-empty string of at most 512 characters")
        if custom_id in seen:
            raise _bad(number, "custom_id", f"custom_id {custom_id!r} is also on line {seen[custom_id]}; "
                       "each request needs its own", "duplicate_custom_id")
        seen[custom_id] = number
        if item.get("method") != "POST":
            raise _bad(number, "method", f"method must be 'POST', got {item.get('method')!r}")
        if item.get("url") != endpoint:
            raise _bad(number, "url", f"url {item.get('url')!r} does not match the batch's endpoint {endpoint!r}",
                       "invalid_url")
        body = item.get("body")
        if not isinstance(body, dict):
            raise _bad(number, "body", "body must be a JSON object: the request the endpoint takes")
        _check_body(state, principal, endpoint, model, number, body)
        lines.append(batches_store.Line(number, custom_id, body))
    if not lines:
        raise ApiError(400, "the input file holds no requests; write one JSON request per line", param="input_file_id",
                       code="empty_file")
    return lines


def _check_body(state: Any, principal: Principal, endpoint: str, model: type[BaseModel], number: int,
                body: dict[str, Any]) -> None:
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        err = from_validation([dict(e) for e in exc.errors(include_url=False)])
        raise _bad(number, f"body.{err.param}" if err.param else "body", err.message, err.code) from None
    try:
        _refuse_unsupported(endpoint, parsed)
    except ApiError as exc:
        raise _bad(number, f"body.{exc.param}" if exc.param else "body", exc.message, exc.code) from None
    if body.get("stream"):
        raise _bad(number, "body.stream", "a batch request cannot stream; leave `stream` out")
    name = body["model"]
    if endpoint == "/v1/embeddings":
        retrieval = state.project.config.retrieval
        if name not in (retrieval.embedder, "default", retrieval.embedder_model):
            raise _bad(number, "body.model", f"the embedding model `{name}` does not exist; this server embeds with "
                       f"`{retrieval.embedder}` (send model `{retrieval.embedder}` or `default`)", "model_not_found")
        return
    try:
        calls.check_model(state, principal, name, param="body.model")
    except ApiError as exc:
        raise _bad(number, "body.model", exc.message, exc.code) from None


def _refuse_unsupported(endpoint: str, parsed: BaseModel) -> None:
    """What the endpoint's route refuses in a well-formed body before calling a model (so a batch line that would
    only fail when run fails here, at once)."""
    from flywheel.server import openai_proxy
    from flywheel.server.openai_proxy import ChatCompletionIn, CompletionIn
    from flywheel.server.responses_wire import ResponsesIn, refuse_unsupported

    if endpoint == "/v1/responses" and isinstance(parsed, ResponsesIn):
        refuse_unsupported(parsed)
    elif endpoint == "/v1/chat/completions" and isinstance(parsed, ChatCompletionIn):
        openai_proxy.refuse_unsupported(parsed)
    elif endpoint == "/v1/completions" and isinstance(parsed, CompletionIn):
        for prompt in parsed.prompts():
            parsed.as_chat(prompt)


def _bad(number: int, field: str | None, message: str, code: str | None = "invalid_batch_input") -> ApiError:
    where = f"line {number}" + (f", field `{field}`" if field else "")
    return ApiError(400, f"input file {where}: {message}", param=field, code=code)


async def _payload(state: Any, batch_id: str, tenant: str) -> dict[str, Any]:
    def load() -> dict[str, Any]:
        row = batches_store.get_batch(state.store, batch_id, tenant)
        return batches_store.batch_payload(row, batches_store.counts(state.store, batch_id))

    return await asyncio.to_thread(load)


@router.get(ROUTE)
async def list_batches(request: Request) -> Any:
    state, tenant = caller(request)
    size, _ = page_query({"limit": request.query_params.get("limit", "20")})

    def load() -> tuple[list[dict[str, Any]], bool]:
        rows, more = batches_store.list_batches(state.store, tenant, limit=size,
                                                after=request.query_params.get("after") or None)
        return [batches_store.batch_payload(r, batches_store.counts(state.store, r["id"])) for r in rows], more

    data, more = await asyncio.to_thread(load)
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": more}


@router.get(ROUTE + "/{batch_id}")
async def retrieve(batch_id: str, request: Request) -> Any:
    state, tenant = caller(request)
    return await _payload(state, batch_id, tenant)


@router.post(ROUTE + "/{batch_id}/cancel")
async def cancel(batch_id: str, request: Request) -> Any:
    """Stop starting requests; those in flight finish, then the batch is `cancelled` with what ran."""
    state, tenant = caller(request)
    row = await asyncio.to_thread(batches_store.get_batch, state.store, batch_id, tenant)
    if row["status"] in batches_store.FINAL:
        raise ApiError(409, f"batch {batch_id!r} is already {row['status']} and cannot be cancelled",
                       param="batch_id", code="invalid_state")
    await asyncio.to_thread(batches_store.set_status, state.store, batch_id, "cancelling", state.clock(),
                            only_from=("validating", "in_progress"))
    runner = getattr(request.app.state, "batch_runner", None)
    if runner is not None:
        runner.wake()
    return await _payload(state, batch_id, tenant)
