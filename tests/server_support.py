"""A real `flywheel serve` app on uvicorn, on 127.0.0.1, in a thread of the test process (one per test module),
in front of `fake_llm`. Registered in conftest.py (`pytest_plugins`)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from flywheel.config import Project
from flywheel.testing.fake_llm import FakeLLM, ToolCall

# price: $0.125 per output token → a 2-token answer ("Yes.") costs exactly $0.25 (binary-exact sums)
PROJECT_YAML = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0,
        price: {{input: 0.0, output: 125000.0}}}}
  other: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
  emb: {{provider: openai_compat, base_url: "{base}", model: fake-embedding}}
retrieval: {{embedder: emb}}
cache: {{exact: false}}
apps:
  support:
    kind: chat
    model: gpt
    options: {{system: "You are ACME support."}}
    guards:
      input:
        - {{check: injection, on_fail: block, message: "I can't do that."}}
"""


def write_project(root: Path, base_url: str) -> Project:
    (root / "flywheel.yaml").write_text(PROJECT_YAML.format(base=base_url), encoding="utf-8")
    return Project.load(root)


def serve_project(root: Path, yaml_text: str, docs: dict[str, str] | None = None) -> LiveServer:
    """A started server over a project written to `root`: its flywheel.yaml and, ingested first, the `docs`
    pages (relative path → Markdown)."""
    from flywheel.apps.runtime import Runtime
    from flywheel.retrieval.ingest import ingest
    from flywheel.server import create_app

    (root / "flywheel.yaml").write_text(yaml_text, encoding="utf-8")
    if docs:
        for name, text in docs.items():
            (root / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "docs" / name).write_text(text, encoding="utf-8")
        project = Project.load(root)
        with Runtime(project) as rt:
            ingest([root / "docs"], rt.store, project.config, root=root)
    return LiveServer(create_app(Project.load(root))).start()


@contextmanager
def serving(root: Path, yaml_text: str, docs: dict[str, str] | None = None) -> Iterator[LiveServer]:
    """`serve_project`, stopped on exit: a module fixture's body is `with serving(...) as s: yield s`."""
    server = serve_project(root, yaml_text, docs)
    try:
        yield server
    finally:
        server.stop()


# The agent/conversation tests' upstream: a weather tool call, its answer, and a name remembered from history.
NAME_IN_HISTORY = r"(?:my name is|我叫)\s*(\w+)"


def name_from_history(body: dict, pattern: str = NAME_IN_HISTORY) -> str:
    earlier = " ".join(m["content"] for m in body["messages"][:-1] if isinstance(m.get("content"), str))
    found = re.search(pattern, earlier, re.IGNORECASE)
    return f"Your name is {found.group(1)}." if found else "I do not know."


@contextmanager
def weather_and_memory_llm(name_pattern: str = NAME_IN_HISTORY) -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        server.add(r"weather in Paris|巴黎.*天气", ToolCall("get_weather", {"city": "Paris"}, id="call_w1"))
        server.add(r'"temp": ?21', "It is 21 degrees in Paris.")
        server.add(r"what is my name|我叫什么", lambda body: name_from_history(body, name_pattern))
        yield server


def last_messages_request(llm: FakeLLM) -> dict:
    """The newest request fake_llm got on Anthropic's /v1/messages."""
    return [r for r in llm.requests if r["path"] == "/v1/messages"][-1]


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1:<free port> until stop()."""

    def __init__(self, app):
        import uvicorn

        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        while not self.server.started:  # readiness poll, not a timing assertion
            if not self.thread.is_alive():
                raise RuntimeError("the server thread died during start-up")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state(self):
        return self.app.state.flywheel

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def server_llm():
    with FakeLLM() as server:
        yield server


@pytest.fixture(scope="module")
def server_clock():
    from conftest import FakeClock

    return FakeClock()


@pytest.fixture(scope="module")
def live(tmp_path_factory, server_llm, server_clock):
    """The server for this test module (its own project folder and store)."""
    from flywheel.server import create_app

    project = write_project(tmp_path_factory.mktemp("serve"), server_llm.base_url)
    server = LiveServer(create_app(project, clock=server_clock, max_body_bytes=64 * 1024)).start()
    yield server
    server.stop()


def openai_client(server: LiveServer, **options: Any) -> Any:
    """The official openai SDK pointed at a served app (no retries unless `options` asks for them)."""
    import openai

    return openai.OpenAI(base_url=server.url + "/v1", **{"api_key": "unused", "max_retries": 0, **options})


def anthropic_client(server: LiveServer, **options: Any) -> Any:
    """The official anthropic SDK pointed at a served app (no retries unless `options` asks for them)."""
    import anthropic

    return anthropic.Anthropic(base_url=server.url, **{"api_key": "unused", "max_retries": 0, **options})
