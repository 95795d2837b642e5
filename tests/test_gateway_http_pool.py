"""The pooled HTTP path of openai_compat (`providers/http_pool.py`): same outcomes as the SDK, real HTTP/1.1.

Non-streaming calls to an alias with a `base_url` skip the openai SDK; these tests hold that road to the
SDK's behaviour (faults, statuses, Retry-After, timeouts) and check the wire handling the fake LLM does not
exercise (chunked and close-delimited bodies, interim 1xx responses, idle connections the server closed).
"""
# ruff: noqa: F811 - pytest fixtures imported from gateway_support are redefined as parameters

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import pytest
from gateway_support import llm, server  # noqa: F401 - fixtures

from flywheel.config import ModelAlias
from flywheel.gateway.providers.base import ProviderError
from flywheel.gateway.providers.http_pool import AsyncHttpPool, HttpPool
from flywheel.gateway.providers.openai_compat import OpenAICompatProvider
from flywheel.gateway.providers.sdk import SdkProvider
from flywheel.testing.fake_llm import Fault
from flywheel.types import ChatRequest

REQUEST = ChatRequest.of("capital of France?", model="primary")


def outcome(call: Callable[[], object]) -> tuple:
    try:
        return ("ok", call().text)  # type: ignore[attr-defined]
    except ProviderError as err:
        return (err.kind, err.status, err.retryable, err.retry_after)


@pytest.mark.parametrize(
    ("fault", "options"),
    [
        (Fault.RATE_LIMIT, {"retry_after": 0.5}),
        (Fault.SERVER_ERROR, {}),
        (Fault.SERVER_ERROR, {"status": 400}),
        (Fault.HANG, {"seconds": 1.0}),
        (Fault.DROP, {}),
        (Fault.TRUNCATED_STREAM, {}),
        (Fault.INVALID_JSON, {}),
    ],
)
def test_pooled_calls_fail_like_the_sdk(llm, fault: Fault, options: dict) -> None:
    alias = ModelAlias(provider="openai_compat", base_url=llm.base_url, model="m")
    prov = OpenAICompatProvider(alias)
    assert prov.lean
    roads = {
        "sdk": lambda: SdkProvider.chat(prov, alias, REQUEST, 0.3),
        "pooled": lambda: prov.chat(alias, REQUEST, 0.3),
        "pooled async": lambda: asyncio.run(prov.achat(alias, REQUEST, 0.3)),
    }
    seen = {}
    for road, call in roads.items():
        llm.fail(fault, times=1, **options)
        seen[road] = outcome(call)
        assert outcome(call) == ("ok", "Paris."), road  # the next call on the same pool is fine
    assert seen["pooled"] == seen["sdk"] == seen["pooled async"]
    prov.close()


def test_status_errors_are_worded_like_the_sdk(llm) -> None:
    alias = ModelAlias(provider="openai_compat", base_url=llm.base_url, model="m")
    prov = OpenAICompatProvider(alias)
    messages = []
    for call in (lambda: SdkProvider.chat(prov, alias, REQUEST, 5), lambda: prov.chat(alias, REQUEST, 5)):
        llm.fail(Fault.RATE_LIMIT, times=1, retry_after=0.25)
        with pytest.raises(ProviderError) as err:
            call()
        messages.append(err.value.message)
    assert messages[0] == messages[1] and messages[0].startswith("Error code: 429 - ")
    prov.close()


def test_the_sdk_serves_what_the_pool_does_not(llm, monkeypatch: pytest.MonkeyPatch) -> None:
    def lean(base_url: str | None) -> bool:
        return OpenAICompatProvider(ModelAlias(provider="openai_compat", base_url=base_url, model="m")).lean

    assert lean(llm.base_url) and lean("https://api.deepseek.com/v1")
    assert not lean(None)  # OpenAI's own endpoint: the SDK's base URL, auth and organisation settings
    assert not lean(llm.base_url + "?api-version=1")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    assert not lean(llm.base_url)


class RawServer:
    """Answers each request on a connection with the next scripted raw response (then closes if told)."""

    def __init__(self, responses: list[bytes], close_after: bool = False):
        self.responses, self.close_after = list(responses), close_after
        self.connections = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            buf = b""
            while self.responses:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                conn.sendall(self.responses.pop(0))
                if self.close_after:
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw() -> Iterator[Callable[..., RawServer]]:
    servers: list[RawServer] = []

    def make(responses: list[bytes], close_after: bool = False) -> RawServer:
        servers.append(RawServer(responses, close_after))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def _post_both(url: str, n: int, pause: float = 0.0) -> tuple[list[bytes], list[bytes]]:
    """n POSTs through a sync pool, then n through an async pool (each pool reused across its posts)."""
    sync_pool = HttpPool(url, {})
    sync_bodies = []
    for _ in range(n):
        sync_bodies.append(sync_pool.post("/x", b"{}", 5.0)[2])
        threading.Event().wait(pause)

    async def go() -> list[bytes]:
        pool = AsyncHttpPool(url, {})
        out = []
        for _ in range(n):
            out.append((await pool.post("/x", b"{}", 5.0))[2])
            await asyncio.sleep(pause)
        pool.close()
        return out

    return sync_bodies, asyncio.run(go())


CHUNKED = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{"a"\r\n5;x=1\r\n: 1}\n\r\n0\r\nX-T: 1\r\n\r\n'
INTERIM = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
CLOSE_DELIMITED = b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"b": 2}'


def test_chunked_interim_and_close_delimited_bodies(raw) -> None:
    chunked = raw([CHUNKED] * 4)
    sync, asyn = _post_both(chunked.url, 2)
    assert [json.loads(b) for b in sync + asyn] == [{"a": 1}] * 4
    assert chunked.connections == 2  # one kept-alive connection per pool
    interim = raw([INTERIM] * 2)
    assert _post_both(interim.url, 1) == ([b"{}"], [b"{}"])
    closing = raw([CLOSE_DELIMITED] * 2, close_after=True)
    assert _post_both(closing.url, 1) == ([b'{"b": 2}'], [b'{"b": 2}'])


def test_idle_connections_the_server_closed_are_not_reused(raw) -> None:
    # keep-alive on paper, but the server hangs up after each answer (an idle timeout): no failed request
    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    server = raw([ok] * 6, close_after=True)
    assert _post_both(server.url, 3, pause=0.05) == ([b"{}"] * 3, [b"{}"] * 3)
    assert server.connections == 6


def test_a_model_eval_never_imports_the_openai_sdk(llm, tmp_path) -> None:
    (tmp_path / "flywheel.yaml").write_text(
        f"models:\n  m: {{provider: openai_compat, base_url: '{llm.base_url}', model: fake}}\n"
        "tracing: {enabled: false}\n",
        encoding="utf-8",
    )
    (tmp_path / "s.yaml").write_text(
        "target: model:m\ncases:\n  - vars: {question: capital of France?}\n"
        "    checks: [{contains: Paris}, {max_words: 5}, {not-contains: London}]\n",
        encoding="utf-8",
    )
    code = (
        "import sys\nfrom flywheel.cli import main\n"
        f"sys.argv = ['flywheel', '--project', {str(tmp_path)!r}, 'eval', 's.yaml', '--json']\n"
        "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
        "print('openai' in sys.modules, 'rich' in sys.modules, file=sys.stderr)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["suites"][0]["pass_rate"] == 1.0
    assert out.stderr.strip().splitlines()[-1] == "False False"
