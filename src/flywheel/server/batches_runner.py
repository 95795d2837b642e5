"""Runs batches (batches_api.py) in the background of `flywheel serve`, on the server's event loop.

Each request of a batch goes through the route a live request takes (POST /v1/chat/completions, /v1/embeddings,
/v1/responses, /v1/completions: the gateway, guards, cache, key limits and tracing), called in-process as the key
that created the batch. Each request is one trace whose root span `batch <endpoint>` carries `flywheel.batch_id`
and `flywheel.batch.custom_id`.

Scheduling: a server process runs every active batch it holds (however many there are), with at most
`server.batch_concurrency` requests in flight over all of them. A free slot goes to the request that has waited
longest, and a batch's next request queues behind the others, so the batches take turns: a new batch starts
within one turn of every batch before it, never after they finish. A request waiting out a rate limit holds no
slot, and a batch cancelled or expired while its request waited for a slot sends nothing more.

A request's output line is kept in the store as soon as it finishes, and only pending requests are ever sent, so
a server restarted mid-batch carries on without repeating finished requests (one in flight when the process died
is sent again). A batch is held by one server process at a time through a lease in its row (renewed every
second, taken over when it lapses, at once when its process on this host is gone). A request refused by the key's
rate limit (429 `rate_limit_exceeded`) waits for its `Retry-After` and is sent again, unless the batch is
cancelled or expires meanwhile (it is then never sent). Cancelling stops new requests; those in flight finish.
Past the completion window, the requests not run are written to the error file as `batch_expired`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request

from flywheel.server import batches_store
from flywheel.server.errors import ApiError
from flywheel.server.keys import Principal
from flywheel.store.leases import worker_id
from flywheel.tracing import tracer

log = logging.getLogger("flywheel.server.batches")
MAX_RATE_WAIT_S = 60.0
_UNRUN = {"cancelled": ("batch_cancelled", "This request was not executed because the batch was cancelled."),
          "expired": ("batch_expired", "This request could not be executed before the completion window expired.")}


def _handlers() -> dict[str, Any]:
    from flywheel.server import models_api, openai_proxy, responses_api

    return {"/v1/chat/completions": openai_proxy.chat_completions, "/v1/completions": openai_proxy.completions,
            "/v1/embeddings": models_api.embeddings, "/v1/responses": responses_api.responses}


class _AsOwner:
    """The server state as seen by the batch's requests: every attribute is the server's, but the caller is the
    batch's owner (its key as it is now: a key revoked since makes each remaining request a 401)."""

    def __init__(self, state: Any, principal: Principal | None):
        self._state, self.principal = state, principal

    def authenticate(self, headers: Any) -> Principal:
        if self.principal is None:
            raise ApiError(401, "the API key that created this batch was revoked", code="invalid_api_key")
        return self.principal

    def __getattr__(self, name: str) -> Any:
        return getattr(self._state, name)


class _Slots:
    """At most `size` holders at once; a freed slot is handed to the longest waiter (first come, first served,
    whatever the Python version's asyncio.Semaphore does)."""

    def __init__(self, size: int):
        self.free = size
        self.waiters: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def _acquire(self) -> None:
        if self.free and not self.waiters:
            self.free -= 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release()  # the slot was handed over as this waiter was cancelled: pass it on
            elif waiter in self.waiters:
                self.waiters.remove(waiter)
            raise

    def _release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the waiter, never back to the pool first
                return
        self.free += 1


class BatchRunner:
    """The background worker: claims active batches from the store and runs them; `wake()` after a create or
    cancel so it does not wait for the next poll. `concurrency`: requests in flight over all its batches."""

    def __init__(self, state: Any, concurrency: int = 4, poll_s: float = 1.0):
        self.state, self.store, self.concurrency, self.poll_s = state, state.store, concurrency, poll_s
        self._slots = _Slots(concurrency)
        self.me = worker_id()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._running: dict[str, asyncio.Task] = {}
        self._held_any = False  # a lease was ever taken (else there is nothing to release on stop)

    def start(self) -> BatchRunner:
        self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        for task in [*self._running.values(), *([self._task] if self._task else [])]:
            task.cancel()
        if not self._held_any:
            return
        try:
            batches_store.release(self.store, self.me)
        except Exception:
            log.exception("releasing the batch leases failed; another server takes them over when they lapse")

    async def _loop(self) -> None:
        from flywheel.store.outage import store_outage

        down = False  # the store is unreachable: said once, not with a traceback every poll
        while True:
            try:
                held = await asyncio.to_thread(batches_store.claim, self.store, self.me, self.state.clock())
                self._held_any = self._held_any or bool(held)
                for bid in held:
                    if bid not in self._running:
                        self._running[bid] = asyncio.create_task(self._run(bid))
                if down:
                    log.warning("batches: the store is back; looking for batches to run again")
                down = False
            except Exception as exc:
                why = store_outage(exc)
                if why is None:
                    log.exception("looking for batches to run failed")
                elif not down:
                    log.warning("batches: the store is unavailable (%s); retrying every %.0f s", why, self.poll_s)
                down = why is not None
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            except TimeoutError:
                pass
            self._wake.clear()

    async def _run(self, batch_id: str) -> None:
        try:
            await self._run_batch(batch_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("batch %s failed", batch_id)
            await asyncio.to_thread(batches_store.set_status, self.store, batch_id, "failed", self.state.clock(),
                                    errors={"object": "list", "data": [{"code": "internal_error", "line": None,
                                            "param": None, "message": "the batch failed; see the server log"}]})
        finally:
            self._running.pop(batch_id, None)

    async def _run_batch(self, batch_id: str) -> None:
        store, clock = self.store, self.state.clock
        batch = await asyncio.to_thread(batches_store.get_batch, store, batch_id)
        if batch["status"] == "validating":
            await asyncio.to_thread(batches_store.set_status, store, batch_id, "in_progress", clock(),
                                    only_from=("validating",))
        todo = iter(await asyncio.to_thread(batches_store.pending, store, batch_id))

        async def stopping() -> bool:
            row = await asyncio.to_thread(batches_store.get_batch, store, batch_id)
            return row["status"] == "cancelling" or clock() >= row["expires_at"]

        async def work() -> None:
            for line in todo:
                if not await self._one(batch, line, stopping):
                    return

        # as many workers as slots, so a batch running alone fills them all; with other batches, each of its
        # requests queues for a slot behind theirs
        await asyncio.gather(*(work() for _ in range(self.concurrency)))
        batch = await asyncio.to_thread(batches_store.get_batch, store, batch_id)
        if batch["status"] == "cancelling":
            final = "cancelled"
        elif batch["status"] == "in_progress" and clock() >= batch["expires_at"] and \
                await asyncio.to_thread(batches_store.pending, store, batch_id):
            final = "expired"
        else:
            final = "completed"
            await asyncio.to_thread(batches_store.set_status, store, batch_id, "finalizing", clock(),
                                    only_from=("in_progress",))
        await asyncio.to_thread(self._finalize, batch, final)

    async def _one(self, batch: dict[str, Any], line: batches_store.Line,
                   stopping: Callable[[], Awaitable[bool]]) -> bool:
        """Run one request to its output line; False (the line left pending) when the batch stopped first."""
        while True:
            async with self._slots.held():
                if await stopping():  # checked once the slot is ours: a stopped batch sends nothing more
                    return False
                # the key as it is now, for each request: one revoked (or re-limited) mid-batch counts at once
                owner = await asyncio.to_thread(batches_store.owner, self.store, batch)
                status, body, rid = await self._send(_AsOwner(self.state, owner), batch, line)
            error = body.get("error") if status >= 400 else None
            if status == 429 and isinstance(error, dict) and error.get("code") == "rate_limit_exceeded":
                # waiting out the key's rate limit, holding no slot: a cancel or the window's end stops the
                # wait, and the line stays unrun (batch_cancelled / batch_expired), never sent after the batch
                # stopped
                waited, wait = 0.0, min(float(body.get("_retry_after") or 1), MAX_RATE_WAIT_S)
                while waited < wait:
                    await asyncio.sleep(min(1.0, wait - waited))
                    waited += 1.0
                    if await stopping():
                        return False
                continue
            break
        body.pop("_retry_after", None)
        result = {"id": f"batch_req_{secrets.token_hex(12)}", "custom_id": line.custom_id,
                  "response": {"status_code": status, "request_id": rid, "body": body}, "error": None}
        await asyncio.to_thread(batches_store.record, self.store, batch["id"], line.line, 200 <= status < 300,
                                result, _tokens(body), self.state.clock())
        return True

    async def _send(self, caller: _AsOwner, batch: dict[str, Any],
                    line: batches_store.Line) -> tuple[int, dict[str, Any], str]:
        """(status, JSON body, request id) of one request through its endpoint's route."""
        rid = f"req_{secrets.token_hex(12)}"
        endpoint, tenant = batch["endpoint"], batch["tenant"]
        headers = [(b"content-type", b"application/json")]
        if caller.principal is None or tenant != caller.principal.tenant:
            headers.append((b"x-flywheel-tenant", tenant.encode()))
        payload = json.dumps(line.body).encode()

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": payload, "more_body": False}

        scope = {"type": "http", "method": "POST", "path": endpoint, "raw_path": endpoint.encode(),
                 "query_string": b"", "headers": headers, "scheme": "http", "root_path": "",
                 "client": ("batch", 0), "server": ("flywheel", 0), "flywheel.request_id": rid,
                 "app": SimpleNamespace(state=SimpleNamespace(flywheel=caller))}
        attrs = {"flywheel.batch_id": batch["id"], "flywheel.batch.custom_id": line.custom_id[:256],
                 "flywheel.tenant": tenant, "flywheel.route": "/v1/batches"}
        with tracer.span(f"batch {endpoint}", "other", None, **attrs):
            try:
                response = await _handlers()[endpoint](Request(scope, receive))
            except ApiError as exc:
                body = exc.body()
                if exc.headers.get("Retry-After"):
                    body["_retry_after"] = exc.headers["Retry-After"]
                return exc.status, body, rid
            except Exception:
                log.exception("batch %s request %s (line %d) failed", batch["id"], line.custom_id, line.line)
                return 500, ApiError(500, f"internal error (request id {rid}); see the server log",
                                     code="internal_error").body(), rid
        if isinstance(response, dict):
            return 200, response, rid
        return response.status_code, json.loads(bytes(response.body)), rid

    def _finalize(self, batch: dict[str, Any], final: str) -> None:
        """Write the output and error files and move the batch to its final status."""
        store, bid, now = self.store, batch["id"], self.state.clock()
        out: list[str] = []
        errors: list[str] = []
        for state, result, custom_id in batches_store.results(store, bid):
            if state == "pending":
                if final not in _UNRUN:
                    continue
                code, message = _UNRUN[final]
                result = {"id": f"batch_req_{secrets.token_hex(12)}", "custom_id": custom_id, "response": None,
                          "error": {"code": code, "message": message}}
            if result is not None:  # a finished request always has its line
                (out if state == "done" else errors).append(_jsonl(result))
        files = {key: ("\n".join(rows) + "\n").encode()
                 for key, rows in (("output_file_id", out), ("error_file_id", errors)) if rows}
        batches_store.finalize(store, batch, final, now, files)


# characters JSON keeps raw inside a string that str.splitlines (and so many a reader of the file) breaks on
_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def _jsonl(result: dict[str, Any]) -> str:
    """One output line: readable UTF-8 (Chinese stays Chinese), with every line break but \\n escaped."""
    return json.dumps(result, ensure_ascii=False).translate(_BREAKS)


def _tokens(body: dict[str, Any]) -> batches_store.Tokens:
    """The usage a response body reports, in the chat / completions shape (prompt_tokens, prompt_tokens_details
    .cached_tokens, completion_tokens_details.reasoning_tokens) or the Responses one (input_tokens …)."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return batches_store.Tokens()

    def count(*path: str) -> int:
        value: Any = usage
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0

    chat = "prompt_tokens" in usage
    return batches_store.Tokens(
        input=count("prompt_tokens") if chat else count("input_tokens"),
        output=count("completion_tokens") if chat else count("output_tokens"),
        cached=count("prompt_tokens_details" if chat else "input_tokens_details", "cached_tokens"),
        reasoning=count("completion_tokens_details" if chat else "output_tokens_details", "reasoning_tokens"))
