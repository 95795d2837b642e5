"""pytest fixture `fake_llm`: a started FakeLLM per test (loaded by flywheel's pytest11 entry point).

    def test_answer(fake_llm):
        fake_llm.add(r"refund", "Refunds take 5 days.")
        app = make_app(base_url=fake_llm.base_url)
        assert "5 days" in app.ask("How do refunds work?")
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flywheel.testing.fake_llm import FakeLLM


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as llm:
        yield llm
