"""Keep-alive for streams that wait long on the upstream (a model thinking before its first or its next chunk), so
proxies and load balancers that cut idle connections leave the stream open. The interval is
`FLYWHEEL_STREAM_PING_SECONDS` (default 10; 0 turns keep-alives off), read per stream.

Before the first chunk: `model_stream` / `app_stream` start the upstream and wait for its first piece up to the
interval. An error within it is raised there, so the route answers a proper HTTP status (502, 504, 429 …). Past
it the route commits to 200 and opens its stream at once with the wire's early events (OpenAI: the role chunk
and `: keep-alive`; Anthropic: `message_start` and `ping`; Responses: `response.created` and
`response.in_progress`), and an error that comes later arrives in the stream, in the wire's error event, like one
after text.

Between pieces: the routes iterate the upstream's pieces through a `Ticking`, which hands out None whenever nothing
came for the interval, and the route writes its wire's keep-alive then (Anthropic: a `ping` event; OpenAI and
Responses: an SSE comment `: keep-alive`, which SSE clients skip).

One task pulls the upstream from its first piece to its last (its cancel scopes and connection stay in one task);
the route waits on a queue with a timeout, which is safe to cancel. Closing the `Ticking` cancels that task, so
the upstream's own `finally` (closing the connection, settling usage) runs before `aclose` returns — also when the
client hangs up while the upstream has sent nothing yet.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

import anyio

from flywheel.server import calls
from flywheel.server.apps_api import primed_app_stream
from flywheel.types import ChatRequest

T = TypeVar("T")
Usage = Callable[[], tuple[int, int, float]]
DEFAULT_SECONDS = 10.0
_PRIMED, _END = object(), object()


def interval() -> float:
    raw = os.environ.get("FLYWHEEL_STREAM_PING_SECONDS", "")
    try:
        return max(float(raw), 0.0) if raw.strip() else DEFAULT_SECONDS
    except ValueError:
        return DEFAULT_SECONDS


class Ticking(Generic[T]):
    """The pieces of the iterator `start` gives, as they come, with None for every `seconds` (default
    `interval()`; 0: never) of silence; an exception of `start` or of the pieces is raised by the iteration."""

    def __init__(self, start: Callable[[], Awaitable[AsyncIterator[T]]], seconds: float | None = None):
        self.wait = interval() if seconds is None else seconds
        self.late = False  # `first` gave up waiting: the stream opens before the upstream's first piece
        self._done = False
        self._queue: asyncio.Queue[tuple[Any, BaseException | None]] = asyncio.Queue(maxsize=1)
        self._task = asyncio.get_running_loop().create_task(self._pump(start))

    async def _pump(self, start: Callable[[], Awaitable[AsyncIterator[T]]]) -> None:
        pieces: AsyncIterator[T] | None = None
        try:
            pieces = await start()
            await self._queue.put((_PRIMED, None))
            async for piece in pieces:
                await self._queue.put((piece, None))
            await self._queue.put((_END, None))
        except Exception as exc:  # noqa: BLE001 - handed to the reader, which raises it
            await self._queue.put((_END, exc))
        finally:
            close = getattr(pieces, "aclose", None)
            if close is not None:
                await close()

    async def _next(self) -> tuple[Any, BaseException | None] | None:
        """The pump's next item; None after an interval without one."""
        try:
            return await asyncio.wait_for(self._queue.get(), self.wait if self.wait > 0 else None)
        except TimeoutError:
            return None

    async def first(self) -> None:
        """Wait up to the interval for `start` to give its iterator (the upstream primed: its first piece
        pulled). Its error meanwhile is raised here; past the interval `late` is set, and a later error comes out
        of the iteration instead."""
        try:
            item = await self._next()
        except BaseException:
            await self.aclose()
            raise
        if item is None:
            self.late = True
        elif item[1] is not None:
            await self.aclose()
            raise item[1]

    def __aiter__(self) -> Ticking[T]:
        return self

    async def __anext__(self) -> T | None:
        while not self._done:
            item = await self._next()
            if item is None:
                return None
            piece, error = item
            if error is not None:
                self._done = True
                raise error
            if piece is _END:
                break
            if piece is not _PRIMED:
                return piece  # type: ignore[no-any-return]
        self._done = True
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop pulling and close the upstream; shielded, so a caller being cancelled still finds it closed."""
        self._done = True
        with anyio.CancelScope(shield=True):
            self._task.cancel()
            await asyncio.wait({self._task})


def keepalive(pieces: AsyncIterator[T], seconds: float | None = None) -> Ticking[T]:
    """`pieces` through a `Ticking` (the same one when it already is)."""
    if isinstance(pieces, Ticking):
        return pieces

    async def start() -> AsyncIterator[T]:
        return pieces

    return Ticking(start, seconds)


class LateUsage:
    """(input tokens, output tokens, cost) of a stream primed by a `Ticking`: the primed stream's own function
    once there is one; before, what a stream cut before its first piece costs (`cut`)."""

    def __init__(self, cut: Usage):
        self.primed: Usage | None = None
        self._cut = cut

    def __call__(self) -> tuple[int, int, float]:
        return (self.primed or self._cut)()

    def cache_read(self) -> int:
        """The prompt-cache reads of the ended stream (openai_proxy.cached_tokens), 0 when unknown."""
        read = getattr(self.primed, "cache_read", None)
        return int(read()) if read is not None else 0

    def reasoning(self) -> int:
        """The reasoning tokens of the ended stream (openai_proxy.reasoning_tokens), 0 when unknown."""
        count = getattr(self.primed, "reasoning", None)
        return int(count()) if count is not None else 0

    def reported(self) -> bool:
        """False when the ended stream's upstream reported no token usage (ChatResult.usage_reported)."""
        known = getattr(self.primed, "reported", None)
        return bool(known()) if known is not None else True


async def _primed(start: Callable[[], Awaitable[tuple[AsyncIterator[T], Usage]]],
                  cut: Usage) -> tuple[Ticking[T], LateUsage]:
    usage = LateUsage(cut)

    async def pieces() -> AsyncIterator[T]:
        found, usage.primed = await start()
        return found

    ticking = Ticking(pieces)
    await ticking.first()
    return ticking, usage


async def model_stream(call: calls.Call, request: ChatRequest,
                       scored: bool = False) -> tuple[Ticking[Any], LateUsage]:
    """`calls.primed_stream` (`primed_scored_stream` when `scored`) waited for up to the keep-alive interval; a
    stream cut before its first chunk costs its prompt (`ServerState.cut_stream_usage`)."""
    prime = calls.primed_scored_stream if scored else calls.primed_stream
    return await _primed(lambda: prime(call, request),  # type: ignore[operator]
                         lambda: call.state.cut_stream_usage(call.model, request.messages, ""))


async def app_stream(call: calls.Call, stream: Any) -> tuple[Ticking[Any], LateUsage]:
    """`apps_api.primed_app_stream` of an app's AnswerStream, waited for up to the keep-alive interval; an app
    stream cut before its first piece settles what its answer reports (nothing, as one cut later)."""
    return await _primed(lambda: primed_app_stream(call, stream), lambda: (0, 0, 0.0))
