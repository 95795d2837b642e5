"""Errors as OpenAI's wire shape `{"error": {"message", "type", "param", "code"}}` (Anthropic's on /v1/messages).

Every failure a route can meet is turned into an `ApiError` here, so no route builds an error body itself and
nothing a client sends can produce a 5xx: a 5xx means the upstream failed (502/504) or a flywheel bug (500).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from flywheel.errors import GatewayError, UserError

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large",
         415: "invalid_request_error", 422: "invalid_request_error", 429: "rate_limit_error",
         500: "server_error", 502: "upstream_error", 503: "server_error", 504: "upstream_timeout"}
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                    502: "api_error", 504: "api_error", 500: "api_error"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or TYPES.get(status, "invalid_request_error")
        self.headers = headers or {}

    def body(self, anthropic: bool = False) -> dict[str, Any]:
        if anthropic:
            return {"type": "error", "error": {"type": _ANTHROPIC_TYPES.get(self.status, self.type),
                                               "message": self.message}}
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def from_validation(errors: list[dict[str, Any]], prefix: tuple = ()) -> ApiError:
    """A pydantic/FastAPI validation error list as a 400 naming the first bad field."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in (*prefix, *first.get("loc", ())) if p not in ("body",)]
    param = ".".join(loc) or None
    kind = first.get("type", "")
    if kind == "json_invalid":
        return ApiError(400, f"the request body is not valid JSON: {first.get('msg')}", code="invalid_json")
    if kind == "extra_forbidden":
        return ApiError(400, f"unrecognized request argument supplied: {param}", param=param,
                        code="unknown_parameter")
    if kind == "missing":
        return ApiError(400, f"missing required parameter: '{param}'", param=param, code="missing_required_parameter")
    if not param and kind in ("model_attributes_type", "dict_type", "model_type"):
        return ApiError(400, "the request body must be a JSON object", code="invalid_value")
    msg = str(first.get("msg", "invalid value"))
    return ApiError(400, f"invalid value for '{param}': {msg}" if param else msg, param=param, code="invalid_value")


# upstream answers that refuse the request itself (not the server's credentials or model name): resending it
# cannot succeed, and SDKs retry a 502 but not a 400
_REQUEST_REFUSED = frozenset({400, 422})


def from_gateway(exc: Exception) -> ApiError:
    """Upstream failures after retries and fallbacks: 400 when every attempt refused the request itself (an
    upstream 400 / 422, or a request no provider of the chain can express), 429 when every attempt was rate
    limited (with the last upstream's Retry-After, so an SDK's retry waits what the upstream asked; a 502 would
    be retried at once), 504 when every attempt timed out, else 502 (an outage, or the server's own upstream key
    or model name is wrong)."""
    if isinstance(exc, GatewayError):
        if exc.attempts and all(a.local_mistake or a.status in _REQUEST_REFUSED for a in exc.attempts):
            return ApiError(400, exc.message, code="invalid_request")
        if exc.attempts and all(a.status == 429 for a in exc.attempts):
            return ApiError(429, exc.message, code="upstream_rate_limited", headers=_retry_after(exc))
        timed_out = bool(exc.attempts) and all("timed out" in a.error.lower() or "timeout" in a.error.lower()
                                               for a in exc.attempts)
        status = 504 if timed_out else 502
        return ApiError(status, exc.message, code="upstream_timeout" if timed_out else "upstream_failed")
    if isinstance(exc, UserError):
        return ApiError(400, exc.message, code="invalid_request")
    return ApiError(502, f"upstream failed: {type(exc).__name__}", code="upstream_failed")


def _retry_after(exc: GatewayError) -> dict[str, str]:
    """Retry-After (whole seconds, rounded up) and retry-after-ms headers from the upstream's, when it sent one."""
    seconds = exc.retry_after
    if not isinstance(seconds, (int, float)) or seconds < 0:
        return {}
    return {"Retry-After": str(math.ceil(seconds)), "retry-after-ms": str(math.ceil(seconds * 1000))}


def compressed_body(headers: Mapping[str, str]) -> ApiError | None:
    """A compressed JSON body would otherwise read as 'not valid JSON': say what is wrong (OTLP, which does
    accept gzip, decodes its own body)."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return None
    return ApiError(415, f"compressed request bodies (content-encoding: {encoding}) are not accepted here; "
                         "send the JSON uncompressed", param="content-encoding")


def page_query(query: Mapping[str, str]) -> tuple[int, str]:
    """(limit, order) of an OpenAI list endpoint's query: `limit` 1-100 (20), `order` asc or desc (desc)."""
    limit = query.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= 100:
        raise ApiError(400, f"limit must be a whole number from 1 to 100, got {limit!r}", param="limit",
                       code="invalid_value")
    order = query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise ApiError(400, f"order must be asc or desc, got {order!r}", param="order", code="invalid_value")
    return int(limit), order
