"""Keep-alive for streams that wait long on the upstream (a model thinking before its next chunk): the routes
iterate the upstream's pieces through `keepalive`, which hands out None whenever nothing came for
`interval()` seconds, and the route writes its wire's keep-alive then (Anthropic: a `ping` event; OpenAI: an SSE
comment `: keep-alive`), so proxies and load balancers that cut idle connections leave the stream open.

The interval is `FLYWHEEL_STREAM_PING_SECONDS` (default 10; 0 turns keep-alives off), read per stream.

One task pulls every piece of the upstream (its cancel scopes and connection stay in one task); the route waits on
a queue with a timeout, which is safe to cancel. Closing the iterator cancels that task, so the upstream's own
`finally` (closing the connection, settling usage) runs before `aclose` returns.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, TypeVar

import anyio

T = TypeVar("T")
DEFAULT_SECONDS = 10.0
_END = object()


def interval() -> float:
    raw = os.environ.get("FLYWHEEL_STREAM_PING_SECONDS", "")
    try:
        return max(float(raw), 0.0) if raw.strip() else DEFAULT_SECONDS
    except ValueError:
        return DEFAULT_SECONDS


async def keepalive(pieces: AsyncIterator[T], seconds: float | None = None) -> AsyncGenerator[T | None, None]:
    """`pieces` as they come, with None between two of them for every `seconds` (default `interval()`) of
    silence; an exception of `pieces` is raised here."""
    wait = interval() if seconds is None else seconds
    if wait <= 0:
        async for piece in pieces:
            yield piece
        return
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=1)

    async def pump() -> None:
        try:
            async for piece in pieces:
                await queue.put((piece, None))
            await queue.put((_END, None))
        except Exception as exc:  # noqa: BLE001 - handed to the reader, which raises it
            await queue.put((_END, exc))
        finally:
            close = getattr(pieces, "aclose", None)
            if close is not None:
                await close()

    task = asyncio.get_running_loop().create_task(pump())
    try:
        while True:
            try:
                piece, error = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                yield None
                continue
            if error is not None:
                raise error
            if piece is _END:
                return
            yield piece
    finally:  # shielded: the caller's own close of `pieces` must find the pump done, even when it is cancelled
        with anyio.CancelScope(shield=True):
            task.cancel()
            await asyncio.wait({task})
