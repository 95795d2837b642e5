"""A conversation deleted while items are being added to it: the caller gets the 404 a deleted conversation
answers, not a 200 with an empty list that reads as "added nothing, all fine"."""

from __future__ import annotations

import openai
import pytest
from server_support import LiveServer

from flywheel.config import Project
from flywheel.server import conversations_store
from flywheel.testing.fake_llm import FakeLLM

YAML = """
models:
  gpt: {{provider: openai_compat, base_url: "{base}", model: fake-model, max_retries: 0}}
server: {{online_evaluators: false, embed_worker: false}}
"""


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    from flywheel.server import create_app

    with FakeLLM() as llm:
        root = tmp_path_factory.mktemp("conv_race")
        (root / "flywheel.yaml").write_text(YAML.format(base=llm.base_url), encoding="utf-8")
        server = LiveServer(create_app(Project.load(root))).start()
        yield server
        server.stop()


def test_items_added_to_a_conversation_deleted_meanwhile_are_a_404(live, monkeypatch):
    client = openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)
    conv = client.conversations.create(items=[{"role": "user", "content": "你好"}])
    found = conversations_store.find

    async def find_then_deleted(state, cid, tenant, param="conversation_id"):
        row = await found(state, cid, tenant, param)
        await conversations_store.delete(state, row)  # another caller's delete lands right after the lookup
        return row

    monkeypatch.setattr(conversations_store, "find", find_then_deleted)
    with pytest.raises(openai.NotFoundError) as err:
        client.conversations.items.create(conv.id, items=[{"role": "user", "content": "还在吗？"}])
    assert err.value.body["code"] == "conversation_not_found"
    monkeypatch.setattr(conversations_store, "find", found)
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)
