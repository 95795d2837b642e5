"""The OpenAI Conversations API (`client.conversations.*`, `client.conversations.items.*`) on `flywheel serve`:

    POST   /v1/conversations                         create (items: up to 20, metadata)
    GET    /v1/conversations/{id}                    retrieve
    POST   /v1/conversations/{id}                    update its metadata
    DELETE /v1/conversations/{id}                    delete it and its items
    POST   /v1/conversations/{id}/items              append items (up to 20)
    GET    /v1/conversations/{id}/items              list (order desc | asc, limit 1-100, after)
    GET    /v1/conversations/{id}/items/{item_id}    one item
    DELETE /v1/conversations/{id}/items/{item_id}    remove one item (answers the conversation)

POST /v1/responses with `conversation` (responses_api.py) puts the conversation's items before its `input` and
appends the input and the answer's output items once the response completes, with `store: false` too (as OpenAI:
`store` keeps or not the response object, the conversation gets the turn either way). An `item_reference` names
an item of any of the tenant's conversations (this one first) or of a kept response. The caller's key is checked
first and a conversation is its tenant's only (conversations_store.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from flywheel.server import calls, conversations_store, responses_store
from flywheel.server.conversations_store import MAX_ADD, Conversation, check_metadata, normal_items
from flywheel.server.errors import ApiError, page_query

router = APIRouter()
ROUTE = "/v1/conversations"


class CreateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Any] | None = Field(default=None, max_length=MAX_ADD)
    metadata: dict[str, str] | None = None


class UpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metadata: dict[str, str] | None


class ItemsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[Any] = Field(min_length=1, max_length=MAX_ADD)


def _tenant(request: Request) -> tuple[Any, str]:
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)  # first: an unauthenticated caller learns nothing
    return state, calls.resolve_tenant(principal, request.headers.get("x-flywheel-tenant"))


async def _items(state: Any, tenant: str, raw: list[Any], cid: str | None = None) -> list[dict[str, Any]]:
    try:
        resolved = await responses_store.resolve_references(state, raw, tenant, cid)
    except ApiError as exc:  # it names the item as `input.N`: here it is `items.N`
        if exc.param and exc.param.startswith("input"):
            exc.param = "items" + exc.param[len("input"):]
        raise
    return normal_items(resolved, "items")


def _list(data: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": has_more}


def _answer(payload: Any) -> calls.JSONBytes:
    return calls.JSONBytes(payload, {})


@router.post(ROUTE, openapi_extra=calls.body_schema(CreateIn))
async def create(request: Request) -> Any:
    """`client.conversations.create(items=…, metadata=…)`."""
    state, tenant = _tenant(request)
    body = await calls.read_body(request, CreateIn)
    meta = check_metadata(body.metadata)
    items = await _items(state, tenant, body.items) if body.items else []
    conv = await conversations_store.create(state, tenant, meta, items)
    return _answer(conv.payload())


async def _find(request: Request, cid: str) -> tuple[Any, Conversation]:
    state, tenant = _tenant(request)
    return state, await conversations_store.find(state, cid, tenant)


@router.get(ROUTE + "/{cid}")
async def retrieve(cid: str, request: Request) -> Any:
    """`client.conversations.retrieve(id)`."""
    _, conv = await _find(request, cid)
    return _answer(conv.payload())


@router.post(ROUTE + "/{cid}", openapi_extra=calls.body_schema(UpdateIn))
async def update(cid: str, request: Request) -> Any:
    """`client.conversations.update(id, metadata=…)`: the metadata is replaced whole."""
    state, conv = await _find(request, cid)
    body = await calls.read_body(request, UpdateIn)
    conv = await conversations_store.set_metadata(state, conv, check_metadata(body.metadata))
    return _answer(conv.payload())


@router.delete(ROUTE + "/{cid}")
async def delete(cid: str, request: Request) -> Any:
    """`client.conversations.delete(id)`: the conversation and its items are deleted from the store."""
    state, conv = await _find(request, cid)
    await conversations_store.delete(state, conv)
    return _answer({"id": conv.id, "object": "conversation.deleted", "deleted": True})


@router.post(ROUTE + "/{cid}/items", openapi_extra=calls.body_schema(ItemsIn))
async def add_items(cid: str, request: Request) -> Any:
    """`client.conversations.items.create(id, items=…)`: the items as stored, in order."""
    state, conv = await _find(request, cid)
    body = await calls.read_body(request, ItemsIn)
    items = await _items(state, conv.tenant, body.items, conv.id)
    stored = await conversations_store.add(state, conv.id, items, fresh_on_duplicate=False)
    if not stored:  # deleted since it was found: nothing was added, and the caller must know
        raise ApiError(404, f"no conversation with id {cid!r} was found", param="conversation_id",
                       code="conversation_not_found")
    return _answer(_list(stored, False))


@router.get(ROUTE + "/{cid}/items")
async def list_items(cid: str, request: Request) -> Any:
    """`client.conversations.items.list(id, order=…, limit=…, after=…)` (desc by default, as OpenAI)."""
    state, conv = await _find(request, cid)
    query = request.query_params
    limit, order = page_query(query)
    data, more = await conversations_store.page(state, conv.id, order, limit, query.get("after"))
    return _answer(_list(data, more))


@router.get(ROUTE + "/{cid}/items/{item_id}")
async def retrieve_item(cid: str, item_id: str, request: Request) -> Any:
    """`client.conversations.items.retrieve(item_id, conversation_id=…)`."""
    state, conv = await _find(request, cid)
    return _answer(await conversations_store.item(state, conv.id, item_id))


@router.delete(ROUTE + "/{cid}/items/{item_id}")
async def delete_item(cid: str, item_id: str, request: Request) -> Any:
    """`client.conversations.items.delete(item_id, conversation_id=…)`: answers the conversation."""
    state, conv = await _find(request, cid)
    await conversations_store.delete_item(state, conv.id, item_id)
    return _answer(conv.payload())
