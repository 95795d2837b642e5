"""What every route shares: the project's Runtime, the key store, the feedback-token signer, metrics, and who
is calling (`authenticate`)."""

from __future__ import annotations

import hmac
import math
import os
import time
from collections.abc import Callable
from typing import Any

from flywheel.apps.runtime import Runtime
from flywheel.config import Project
from flywheel.server.app import is_loopback, local_name
from flywheel.server.counters import build_counters
from flywheel.server.errors import ApiError
from flywheel.server.keys import Admission, CountersDown, KeyStore, LimitExceeded, Principal
from flywheel.server.metrics import Metrics
from flywheel.server.tokens import TokenSigner, check_env_secrets, load_secret

OPEN = Principal(name="open", tenant="default")
__all__ = ["OPEN", "ServerState", "is_loopback"]


class ServerState:
    def __init__(self, project: Project, *, host: str = "127.0.0.1", clock: Callable[[], float] = time.time,
                 max_body_bytes: int = 4 * 1024 * 1024, runtime: Runtime | None = None):
        self.project = project
        self.host = host
        self.clock = clock
        self.max_body_bytes = max_body_bytes
        self.runtime = runtime or Runtime(project)
        self.store = self.runtime.store  # opened (and migrated) at start-up, not on the first request
        self.keys = KeyStore(self.store, clock, counters=build_counters(project.config, self.store))
        check_env_secrets()
        self.signer = TokenSigner(load_secret(project), clock)
        self.metrics = Metrics()
        self.admin_key = os.environ.get("FLYWHEEL_ADMIN_KEY") or None
        self.allow_open = is_loopback(host)
        self._apps: dict[str, Any] = {}
        self._embedder: Any = None
        self._has_keys = False
        self._keys_checked = 0.0

    def app(self, name: str) -> Any:
        app = self._apps.get(name)
        if app is None:
            app = self._apps[name] = self.runtime.app(name)
        return app

    def authenticate(self, headers: Any) -> Principal:
        """The caller from `Authorization: Bearer KEY` or `x-api-key: KEY` (Anthropic clients). Until a first key
        is created, on a loopback address, everyone is the open principal; otherwise a missing or invalid key is 401."""
        key = headers.get("x-api-key") or ""
        auth = headers.get("authorization") or ""
        if auth[:7].lower() == "bearer ":
            key = auth[7:].strip()
        if key and self.admin_key and hmac.compare_digest(key.encode(), self.admin_key.encode()):
            return Principal(name="admin", admin=True)
        if self.allow_open and not self._keys_exist():
            if not local_name(headers.get("host")):
                raise ApiError(401, "this server has no API keys, so it answers only requests to a local name "
                                    "(localhost, 127.0.0.1, [::1]); this one was sent to "
                                    f"{str(headers.get('host'))[:100]!r}: create a key with `flywheel keys "
                                    "create` to serve other names", code="missing_api_key")
            return OPEN  # SDKs always send some key: on an open server it is ignored
        if not key:
            raise ApiError(401, "an API key is required: send `Authorization: Bearer <key>`",
                           code="missing_api_key")
        principal = self.keys.verify(key)
        if principal is None:
            raise ApiError(401, "invalid or revoked API key", code="invalid_api_key")
        return principal

    def _keys_exist(self) -> bool:
        """Whether a key was ever created. Revoking every key does not open the server again; rows are never
        deleted, so once true it stays true (no query per request)."""
        if self.keys.created_here:
            self._has_keys = True
        if not self._has_keys and time.monotonic() >= self._keys_checked:
            self._has_keys = self.keys.any_active(include_revoked=True)
            self._keys_checked = time.monotonic() + 1.0  # a key made by `flywheel keys create` counts within 1 s
        return self._has_keys

    def admit(self, principal: Principal, estimate_usd: float = 0.0) -> Admission:
        try:
            return self.keys.admit(principal, estimate_usd)
        except CountersDown as exc:  # fail closed: a limited key is not served while its counters are unknown
            raise ApiError(503, f"{exc}; requests of keys with a budget or rate limit are refused until it is back",
                           code="counters_unavailable", headers={"Retry-After": "5"}) from None
        except LimitExceeded as exc:
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
            status = 401 if exc.code == "invalid_api_key" else 429
            raise ApiError(status, exc.message, code=exc.code,
                           type="insufficient_quota" if exc.code == "budget_exceeded" else None,
                           headers=headers) from None

    def estimate(self, alias: str, input_chars: int, max_tokens: int | None) -> float:
        """An upper-ish cost estimate reserved against a budget while the request runs (a route: its dearest arm)."""
        cfg = self.project.config
        route = cfg.routes.get(alias)
        if route is not None:
            arms = [route.alias] if route.alias else list(route.split or ())
            return max((self.estimate(a, input_chars, max_tokens) for a in arms if a in cfg.models), default=0.0)
        model = cfg.models.get(alias)
        if model is None:
            return 0.0
        price = model.price
        return (price.input * math.ceil(input_chars / 4) + price.output * (max_tokens or 0)) / 1e6

    def embed(self, texts: list[str]) -> Any:
        """Vectors of `texts` from the configured embedder (`retrieval.embedder`), built on first use."""
        if self._embedder is None:
            from flywheel.retrieval.embedders import build_embedder

            cfg = self.project.config
            self._embedder = build_embedder(cfg.retrieval, cfg.models, where=self.project.where("retrieval"))
            if self._embedder is None:
                from flywheel.server.errors import ApiError

                raise ApiError(404, "this project has no embedder (`retrieval.embedder: none`)", param="model",
                               code="model_not_found")
        return self._embedder.embed(texts)

    def cut_stream_usage(self, alias: str, messages: list[Any], delivered: str) -> tuple[int, int, float]:
        """(input tokens, output tokens, cost) of a stream the client dropped before the upstream reported its
        usage: the prompt and the text produced so far, estimated the way the gateway estimates tokens, priced at
        the alias's price. The caller charges this to the key, since the upstream bills what it generated."""
        from flywheel.gateway.pricing import cost_usd
        from flywheel.gateway.providers.base import estimate_tokens

        tin = sum(estimate_tokens(getattr(m, "content", None) or "") for m in messages)
        tout = estimate_tokens(delivered) if delivered else 0
        model = self.project.config.models.get(alias)
        return tin, tout, cost_usd(model.price, tin, tout) if model is not None else 0.0

    def close(self) -> None:
        self.keys.counters.close()
        self.runtime.close()
