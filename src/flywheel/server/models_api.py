"""GET /v1/models[/ID] and POST /v1/embeddings: the OpenAI-compatible routes that are not a chat (moved out of
openai_proxy.py). The model list is the aliases and `app:` names the caller's key may use (with Anthropic's card
fields too, so both SDKs' `models.list()` work). A request with the `anthropic-version` header (every Anthropic SDK
sends it) gets Anthropic's page instead (`limit` 1..1000, default 20; `after_id` / `before_id`; `has_more`,
`first_id`, `last_id`), so the SDK's auto-pagination walks it; OpenAI clients get the whole list. Embeddings come from the configured embedder, text only (token
ids are a 400 naming LangChain's switch), floats or base64.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flywheel.errors import UserError
from flywheel.server import calls
from flywheel.server.errors import ApiError

router = APIRouter()


class EmbeddingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, max_length=200)
    # token ids (what LangChain's OpenAIEmbeddings sends by default) are parsed so the refusal can name them
    input: str | list[str] | list[int] | list[list[int]] = Field(min_length=1)
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = None
    user: str | None = None

def _model_cards(request: Request) -> list[dict[str, Any]]:
    """The aliases and `app:` names the caller's key may use, as OpenAI model objects."""
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)
    created = int(state.project.config_path.stat().st_mtime) if state.project.config_path.exists() else 0
    names = [m for m in calls.model_names(state) if principal.may_use_model(m)]
    names += [f"app:{a}" for a in calls.app_names(state) if principal.may_use_app(a)]
    # OpenAI's model fields, and Anthropic's (type, display_name, created_at) for its SDK's models.list()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    return [{"id": m, "object": "model", "created": created, "owned_by": "flywheel", "type": "model",
             "display_name": m, "created_at": stamp} for m in names]

@router.get("/v1/models")
async def list_models(request: Request) -> Any:
    cards = _model_cards(request)
    if "anthropic-version" not in request.headers:
        return {"object": "list", "data": cards}
    return _anthropic_page(cards, request.query_params)


def _anthropic_page(cards: list[dict[str, Any]], query: Any) -> dict[str, Any]:
    """Anthropic's cursor page over the cards: `after_id` starts after that id, `before_id` ends before it (the
    `limit` cards nearest it); an id that is not in the list is a 400 naming the parameter."""
    raw = query.get("limit")
    try:
        limit = 20 if raw is None else int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise ApiError(400, f"limit must be a whole number from 1 to 1000, got {raw!r}", param="limit",
                       code="invalid_value")
    ids = [c["id"] for c in cards]
    start, end = 0, len(cards)
    for name in ("after_id", "before_id"):
        value = query.get(name)
        if value is None:
            continue
        if value not in ids:
            raise ApiError(400, f"{name} {value!r} is not a model on this server; send an id from a page's "
                           "first_id / last_id", param=name, code="invalid_value")
        if name == "after_id":
            start = ids.index(value) + 1
        else:
            end = ids.index(value)
    if query.get("before_id") is not None and query.get("after_id") is None:
        page, has_more = cards[max(start, end - limit):end], end - limit > start
    else:
        page, has_more = cards[start:min(end, start + limit)], start + limit < end
    data = [{k: c[k] for k in ("type", "id", "display_name", "created_at")} for c in page]
    return {"data": data, "has_more": has_more, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None}

@router.get("/v1/models/{model:path}")
async def retrieve_model(model: str, request: Request) -> Any:
    # `client.models.retrieve(ID)`; a model the key may not use is as absent as one that does not exist.
    cards = _model_cards(request)
    for card in cards:
        if card["id"] == model:
            return card
    raise ApiError(404, f"the model `{model}` does not exist; known: {', '.join(c['id'] for c in cards)}",
                   param="model", code="model_not_found")

@router.post("/v1/embeddings", openapi_extra=calls.body_schema(EmbeddingsIn))
async def embeddings(request: Request) -> Any:
    state = request.app.state.flywheel
    principal = state.authenticate(request.headers)
    body = await calls.read_body(request, EmbeddingsIn)
    configured = state.project.config.retrieval.embedder
    if body.model not in (configured, "default") and body.model != state.project.config.retrieval.embedder_model:
        raise ApiError(404, f"the embedding model `{body.model}` does not exist; this server embeds with "
                       f"`{configured}` (send model `{configured}` or `default`)", param="model",
                       code="model_not_found")
    given = [body.input] if isinstance(body.input, str) else list(body.input)
    texts = [t for t in given if isinstance(t, str)]
    if len(texts) != len(given):
        raise ApiError(400, "`input` as token ids is not supported: this server embeds text, send strings (LangChain: "
                       "OpenAIEmbeddings(..., check_embedding_ctx_length=False))", param="input",
                       code="unsupported_value")
    if any(not t for t in texts):
        raise ApiError(400, "input texts must be non-empty", param="input", code="invalid_value")
    tenant = calls.resolve_tenant(principal, request.headers.get("x-flywheel-tenant"))
    call = await calls.begin(state, principal, tenant, "/v1/embeddings", configured, None)
    try:
        vectors = await asyncio.to_thread(state.embed, texts)
    except UserError as exc:
        await call.finish(error=exc)
        raise call.fail_upstream(exc) from None
    tokens = sum(max(1, len(t) // 4) for t in texts)
    if body.dimensions is not None and body.dimensions != vectors.shape[1]:
        err = ApiError(400, f"`{configured}` makes {vectors.shape[1]}-dimensional vectors and cannot shorten them: "
                       f"leave `dimensions` out or send {vectors.shape[1]}", param="dimensions",
                       code="invalid_value", headers=call.headers)
        await call.finish(input_tokens=tokens, error=err.message)
        raise err
    await call.finish(input_tokens=tokens)
    return JSONResponse({"object": "list", "model": body.model,
                         "data": [{"object": "embedding", "index": i, "embedding": _encode(v, body.encoding_format)}
                                  for i, v in enumerate(vectors)],
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}, headers=call.headers)

def _encode(vector: Any, encoding: str | None) -> Any:
    """A vector as floats, or as base64 of little-endian float32 (what the OpenAI SDK asks for by default)."""
    if encoding == "base64":
        import base64

        import numpy as np

        return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode()
    return vector.tolist()
