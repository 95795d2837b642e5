# ruff: noqa: F811 - the shared fixtures imported from conftest are redefined as parameters
"""Shared fixtures of the test_gateway_* modules: one fake LLM server per module, reset around each test.

No tests here; those modules import the fixtures they use (`from gateway_support import llm, server, …`).
`llm` answers questions about a capital with the test module's `ANSWER` ("Paris." where it has none).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import server  # noqa: F401 - the shared module-scoped fake LLM, re-exported

from flywheel.testing.fake_llm import FakeLLM


@pytest.fixture
def llm(server: FakeLLM, request: pytest.FixtureRequest) -> Iterator[FakeLLM]:
    server.reset()
    server.add("capital", getattr(request.module, "ANSWER", "Paris."))
    yield server
    server.reset()


