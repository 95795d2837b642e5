"""Batches take turns on `flywheel serve`: with 21 big batches running, a batch created after them starts and
finishes within one turn of each (never after one of them ends); the requests in flight over all batches stay
within `server.batch_concurrency`; cancelled batches send nothing more and give their turns up. The upstream's
progress is handed out one reply at a time by the test (fake_llm replies wait for a permit), so every assertion is
on a count or a state, never on time."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable

import httpx  # noqa: F401  (loaded before the server thread imports it: the SDK reads it lazily)
import pytest
from openai import OpenAI
from server_support import LiveServer

from flywheel.config import Project
from flywheel.testing.fake_llm import FakeLLM

CONCURRENCY = 2
OLD_BATCHES, OLD_LINES = 21, 80
YAML = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
cache: {{exact: false}}
retrieval: {{embedder: none}}
server: {{batch_concurrency: {concurrency}, online_evaluators: false, embed_worker: false}}
"""


class Gate:
    """The upstream's replies to `old …` questions: each waits for a permit the test hands out."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.permits = self.arrived = self.served = self.waiting = self.max_waiting = 0
        self.open = False

    def reply(self, body: dict) -> str:
        with self.cond:
            self.arrived += 1
            self.waiting += 1
            self.max_waiting = max(self.max_waiting, self.waiting)
            self.cond.notify_all()
            while not (self.open or self.permits):
                self.cond.wait()
            if not self.open:
                self.permits -= 1
            self.waiting -= 1
            self.served += 1
            self.cond.notify_all()
        return "old answer"

    def wait_for(self, what: Callable[[], bool], deadline_s: float = 30.0) -> None:
        deadline = time.monotonic() + deadline_s
        with self.cond:
            while not what():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"gave up waiting (arrived {self.arrived}, served {self.served})")
                self.cond.wait(left)

    def step(self) -> None:
        """Let one waiting reply go, and wait until it went."""
        with self.cond:
            target = self.served + 1
            self.permits += 1
            self.cond.notify_all()
        self.wait_for(lambda: self.served >= target)

    def release_all(self) -> None:
        with self.cond:
            self.open = True
            self.cond.notify_all()


@pytest.fixture
def setup(tmp_path):
    from flywheel.server import create_app

    gate = Gate()
    with FakeLLM() as llm:
        llm.add(r"^old ", gate.reply)
        llm.add(r"^new ", "new answer")
        yaml_text = YAML.format(base=llm.base_url, concurrency=CONCURRENCY)
        (tmp_path / "flywheel.yaml").write_text(yaml_text, encoding="utf-8")
        server = LiveServer(create_app(Project.load(tmp_path))).start()
        try:
            yield OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0), gate
        finally:
            gate.release_all()
            server.stop()


def _create(c: OpenAI, prefix: str, n: int) -> str:
    lines = [{"custom_id": f"{prefix}-{i}", "method": "POST", "url": "/v1/chat/completions",
              "body": {"model": "gpt", "messages": [{"role": "user", "content": f"{prefix} question {i}"}]}}
             for i in range(n)]
    f = c.files.create(file=("in.jsonl", "\n".join(json.dumps(x) for x in lines).encode()), purpose="batch")
    return c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h").id


def _wait_status(c: OpenAI, batch_id: str, status: str, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    while c.batches.retrieve(batch_id).status != status:  # readiness poll with a deadline
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {batch_id} never reached {status}")
        time.sleep(0.02)


def test_a_new_batch_runs_in_its_turn_behind_21_big_ones(setup):
    c, gate = setup
    old = [_create(c, "old", OLD_LINES) for _ in range(OLD_BATCHES)]
    gate.wait_for(lambda: gate.waiting >= CONCURRENCY)  # the old batches are running
    new = _create(c, "new", 1)
    finished_old = None
    for _ in range(OLD_LINES):  # before any old batch could have finished all its requests
        if c.batches.retrieve(new).status == "completed":
            finished_old = gate.served
            break
        gate.step()
    assert finished_old is not None, "the new batch did not run while the old ones were in progress"
    # its turn came after about one request of each batch queued before it (slack for the status poll), far
    # before the OLD_LINES an old batch needs to finish
    assert finished_old <= (OLD_BATCHES + 1) * CONCURRENCY + 10 < OLD_LINES
    assert gate.max_waiting <= CONCURRENCY  # in flight over all batches, not per batch
    assert all(c.batches.retrieve(b).status == "in_progress" for b in old)

    # every slot held by a request parked at the upstream: none is on its way there while the batches are cancelled
    gate.wait_for(lambda: gate.waiting == CONCURRENCY)
    arrived = gate.arrived
    for b in old:
        c.batches.cancel(b)
    gate.release_all()  # the requests in flight finish; the cancelled batches send nothing more
    for b in old:
        _wait_status(c, b, "cancelled")
    assert gate.arrived == arrived
    again = _create(c, "new", 3)  # the cancelled batches hold no turn
    _wait_status(c, again, "completed")


def test_slots_go_to_the_longest_waiter_and_a_cancelled_waiter_passes_its_slot_on():
    import asyncio

    from flywheel.server.batches_runner import _Slots

    async def scenario() -> tuple[list[str], int]:
        slots, order = _Slots(1), []
        release = {name: asyncio.Event() for name in "abcde"}

        async def job(name: str) -> None:
            async with slots.held():
                order.append(name)
                await release[name].wait()

        tasks = {}
        for name in "abcde":
            tasks[name] = asyncio.create_task(job(name))
            await asyncio.sleep(0)  # queued in this order
        tasks["c"].cancel()  # cancelled while queued: it never holds the slot
        release["a"].set()
        await asyncio.sleep(0)
        tasks["b"].cancel()  # handed the slot by a, cancelled before it ran: the slot goes on to d
        for name in "de":
            release[name].set()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        return order, slots.free

    assert asyncio.run(scenario()) == (["a", "d", "e"], 1)
