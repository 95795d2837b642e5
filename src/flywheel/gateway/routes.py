"""Routes: a name callers use like a model alias, resolved per request (flywheel.yaml `routes:`).

    routes:
      support: {alias: small}                                   # plain indirection
      faq: {split: {small: 90, large: 10}, sticky: user}        # A/B: arms by weight, sticky per user
      triage: {alias: small, shadow: large}                     # shadow: a copy goes to `large`, only stored
      ask: {router: {model: routers/ask, small: small, strong: large, threshold: 0.4}}  # per query

A request whose `model` is a route name is served by one arm; a `route <name>` span wraps the gateway call
with `flywheel.route`, `flywheel.route.arm` and the served cost (`flywheel.route.cost_usd`). A `router` route
scores the request's last user message with the classifier `flywheel route train-router` saved (the same
features as flywheel.checks.trained) and serves it with `small` unless the predicted probability that `small`
fails is above the threshold; the span also carries `flywheel.route.p_fail` and `flywheel.route.threshold`. Sticky
assignment hashes the route name with the caller's user (request metadata `user` / `user_id`) or session
(`session_id`, or `request.session_id` from the OpenAI body's metadata), so one user always sees the same arm;
without an id (or `sticky: none`) each request draws at random.

Shadow: after the served answer is ready, a copy of the request goes to the shadow alias in a clean context
(its own trace, root span `shadow <route>` with `flywheel.shadow_of` = the served trace id), on a small thread
pool (sync calls) or a task (asyncio). The served call never waits for it, never sees its errors, and its cost
is on the shadow trace only. At most `MAX_PENDING` shadow copies are in flight; beyond that they are skipped
(counted in `Router.shadow_skipped`). Streams are routed to an arm but not shadowed.
"""

from __future__ import annotations

import asyncio
import contextvars
import hashlib
import logging
import random
import threading
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from flywheel.config import RouteConfig, RouterSpec
from flywheel.errors import UserError
from flywheel.tracing import tracer
from flywheel.types import ChatRequest, ChatResult

if TYPE_CHECKING:
    from flywheel.gateway.gateway import Gateway

log = logging.getLogger(__name__)

MAX_PENDING = 64  # shadow copies in flight at once; more are skipped rather than queued without bound
SHADOW_WORKERS = 4


def sticky_key(request: ChatRequest, sticky: str) -> str | None:
    """The id the arm is hashed on: the user's or the session's, from the request metadata; None: draw."""
    meta = request.metadata or {}
    if sticky == "user":
        value = meta.get("user") or meta.get("user_id")
    elif sticky == "session":
        nested = meta.get("request")
        nested = nested if isinstance(nested, dict) else {}
        value = meta.get("session_id") or meta.get("session") or nested.get("session_id")
    else:
        return None
    return str(value) if value else None


def bucket(route: str, key: str) -> float:
    """A stable number in [0, 1) for (route, key): the same user lands in the same arm on every process."""
    digest = hashlib.sha256(f"{route}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick_arm(route: str, config: RouteConfig, key: str | None, rng: random.Random | None = None) -> str:
    """The arm (an alias) serving this request: by the hash of `key`, or at random when there is none."""
    arms = config.arms
    if len(arms) == 1:
        return next(iter(arms))
    point = bucket(route, key) if key is not None else (rng or random).random()
    acc = 0.0
    for alias, share in arms.items():
        acc += share
        if point < acc:
            return alias
    return alias  # rounding: the last arm


ROUTER_KIND = "query-router"  # model.json `kind` of a router saved by flywheel.loop.query_router


class QueryRouter:
    """A saved query-level router: P(the small model fails this query) from the query text alone."""

    def __init__(self, route: str, spec: RouterSpec):
        from flywheel.checks.trained import TrainedModel

        self.route, self.spec, self.threshold = route, spec, spec.threshold
        folder = spec.path()
        if not (folder / "model.json").is_file():
            raise UserError(f"route '{route}': no query router in {folder} (model.json missing)",
                            hint="train one: flywheel route train-router ROUTE --small A --strong B --suite S")
        try:
            self.model = TrainedModel.load(folder)
        except UserError as exc:
            raise UserError(f"route '{route}': {exc.message}",
                            hint="train the router again: flywheel route train-router") from None
        meta = self.model.meta
        if meta.get("kind") != ROUTER_KIND:
            raise UserError(f"route '{route}': {folder} holds a {meta.get('kind') or 'trained check'}, not a "
                            "query router", hint="point `router.model` at a folder `route train-router` wrote")
        trained_on = (meta.get("small"), meta.get("strong"))
        if trained_on != (spec.small, spec.strong):  # its predictions are about other models' failures
            raise UserError(f"route '{route}': the router in {folder} was trained for small={trained_on[0]}, "
                            f"strong={trained_on[1]}, but the route names small={spec.small}, strong={spec.strong}",
                            hint="name the aliases it was trained for, or train it again for these")
        self.embedder: Any = None
        if self.model.features == "embedding":
            from flywheel.retrieval.embedders import local_embedder, local_names

            if meta.get("embedder") not in local_names():
                raise UserError(f"route '{route}': the router was fitted on {meta.get('embedder')} vectors; "
                                f"the gateway computes only the local embedder's ({', '.join(local_names())})",
                                hint="train it with --features tfidf, or with the local embedder")
            self.embedder = local_embedder(meta.get("embedder"))

    @property
    def blocking(self) -> bool:
        """Scoring does real work (an embedding model) that an event loop should not wait on."""
        return self.embedder is not None

    def p_fail(self, text: str) -> float:
        return float(self.model.predict([text], [""], self.embedder)[0])

    def choose(self, request: ChatRequest) -> tuple[str, float]:
        """(the arm, the predicted probability that the small model fails)."""
        p = self.p_fail(request.last_user())
        return (self.spec.strong if p > self.threshold else self.spec.small), p


def load_routers(routes: Mapping[str, RouteConfig]) -> dict[str, QueryRouter]:
    return {name: QueryRouter(name, r.router) for name, r in routes.items() if r.router is not None}


class Router:
    """Resolves route names for one gateway and dispatches shadow copies."""

    def __init__(self, routes: Mapping[str, RouteConfig], *, rng: random.Random | None = None):
        self.routes = dict(routes)
        self.query_routers = load_routers(self.routes)  # a missing or broken router file fails here, loudly
        self.rng = rng or random.Random()
        self.shadow_skipped = 0
        self._pending = 0
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.futures: list[Future[Any] | asyncio.Task[Any]] = []  # recent shadow work (tests wait on it)

    def __contains__(self, name: object) -> bool:
        return name in self.routes

    def primary(self, name: str) -> str:
        """The alias standing for the route where one alias is needed (validation, versions): the heaviest arm
        (a router's small one)."""
        arms = self.routes[name].arms
        return max(arms, key=lambda a: arms[a])

    def resolve(self, request: ChatRequest) -> tuple[ChatRequest, str]:
        """(the request addressed to the chosen arm, that arm)."""
        routed, attrs = self._route(request)
        return routed, attrs["flywheel.route.arm"]

    def _route(self, request: ChatRequest, p_fail: float | None = None) -> tuple[ChatRequest, dict[str, Any]]:
        """The request addressed to its arm, and the span attributes that record the choice."""
        name = request.model
        config = self.routes[name]
        scorer = self.query_routers.get(name)
        if scorer is None:
            arm = pick_arm(name, config, sticky_key(request, config.sticky), self.rng)
            return request.model_copy(update={"model": arm}), self._attrs(name, arm)
        if p_fail is None:
            arm, p_fail = scorer.choose(request)
        else:
            arm = scorer.spec.strong if p_fail > scorer.threshold else scorer.spec.small
        attrs = {**self._attrs(name, arm), "flywheel.route.p_fail": round(p_fail, 6),
                 "flywheel.route.threshold": scorer.threshold}
        return request.model_copy(update={"model": arm}), attrs

    async def _aroute(self, request: ChatRequest) -> tuple[ChatRequest, dict[str, Any]]:
        scorer = self.query_routers.get(request.model)
        if scorer is not None and scorer.blocking:  # an embedding model: score off the event loop
            p = await asyncio.to_thread(scorer.p_fail, request.last_user())
            return self._route(request, p)
        return self._route(request)

    # ------------------------------------------------------------------ serving
    def chat(self, gateway: Gateway, request: ChatRequest) -> ChatResult:
        routed, attrs = self._route(request)
        with tracer.span(f"route {request.model}", "other", None, **attrs) as span:
            result = gateway.chat(routed)
            span.set(result.text, **{"flywheel.route.cost_usd": result.cost_usd})
            trace_id = span.trace_id
        self._shadow_sync(gateway, request, trace_id)
        return result

    async def achat(self, gateway: Gateway, request: ChatRequest) -> ChatResult:
        routed, attrs = await self._aroute(request)
        span, token = tracer.start(f"route {request.model}", "other", None, **attrs)
        try:
            result = await gateway.achat(routed)
            span.set(result.text, **{"flywheel.route.cost_usd": result.cost_usd})
        except BaseException as exc:
            span.record_error(exc)
            raise
        finally:
            tracer.end(span, token)
        self._shadow_async(gateway, request, span.trace_id)
        return result

    @staticmethod
    def _attrs(name: str, arm: str) -> dict[str, Any]:
        return {"flywheel.route": name, "flywheel.route.arm": arm}

    # ------------------------------------------------------------------ shadow
    def _shadow_request(self, request: ChatRequest) -> ChatRequest | None:
        config = self.routes[request.model]
        if config.shadow is None or (config.shadow_sample < 1 and self.rng.random() >= config.shadow_sample):
            return None
        if not self._reserve():
            return None
        return request.model_copy(update={"model": config.shadow})

    def _reserve(self) -> bool:
        with self._lock:
            if self._pending >= MAX_PENDING:
                self.shadow_skipped += 1
                return False
            self._pending += 1
            return True

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1

    def _shadow_sync(self, gateway: Gateway, request: ChatRequest, served: str) -> None:
        copy = self._shadow_request(request)
        if copy is None:
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(SHADOW_WORKERS, thread_name_prefix="flywheel-shadow")
            pool = self._pool
        # a fresh Context: the shadow's spans start their own trace instead of joining (and costing) the served one
        future = pool.submit(contextvars.Context().run, self._run_shadow, gateway, request.model, copy, served)
        self._remember(future)

    def _shadow_async(self, gateway: Gateway, request: ChatRequest, served: str) -> None:
        copy = self._shadow_request(request)
        if copy is None:
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(self._arun_shadow(gateway, request.model, copy, served), context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._remember(task)

    def _remember(self, work: Future[Any] | asyncio.Task[Any]) -> None:
        with self._lock:
            self.futures = [*self.futures[-(MAX_PENDING - 1):], work]

    def _run_shadow(self, gateway: Gateway, name: str, copy: ChatRequest, served: str) -> ChatResult | None:
        try:
            with tracer.span(f"shadow {name}", "other", None, **self._shadow_attrs(name, copy.model, served)) as span:
                result = gateway.chat(copy)
                span.set(result.text, **{"flywheel.route.cost_usd": result.cost_usd})
                return result
        except Exception as exc:  # noqa: BLE001 - a failing candidate is recorded on its trace, never raised
            log.info("shadow call for route %s failed: %s", name, exc)
            return None
        finally:
            self._release()

    async def _arun_shadow(self, gateway: Gateway, name: str, copy: ChatRequest, served: str) -> ChatResult | None:
        span, token = tracer.start(f"shadow {name}", "other", None, **self._shadow_attrs(name, copy.model, served))
        try:
            result = await gateway.achat(copy)
            span.set(result.text, **{"flywheel.route.cost_usd": result.cost_usd})
            return result
        except Exception as exc:  # noqa: BLE001 - likewise
            span.record_error(exc)
            log.info("shadow call for route %s failed: %s", name, exc)
            return None
        finally:
            tracer.end(span, token)
            self._release()

    @staticmethod
    def _shadow_attrs(name: str, alias: str, served: str) -> dict[str, Any]:
        return {"flywheel.route": name, "flywheel.route.arm": alias, "flywheel.shadow_of": served}

    def close(self, wait: bool = False) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=wait, cancel_futures=not wait)
