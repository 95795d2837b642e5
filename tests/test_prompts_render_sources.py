"""`Prompt.render(sources=…)` takes what docs/prompts.md shows: SourceItems, or plain {text, source, …} mappings
and texts numbered from 1 (a mapping used to fail with AttributeError: 'dict' object has no attribute 'id')."""

from __future__ import annotations

import pytest

from flywheel.errors import UserError
from flywheel.prompts import Prompt, SourceItem

PROMPT = {"system": "Cite [n].", "template": "{{sources}}\n\nQuestion: {{question}}"}


def test_mappings_and_texts_become_numbered_sources():
    prompt = Prompt.from_content("qa", PROMPT)
    items = [{"text": "Set `version:` on the alias.", "source": "docs/pin.md"}, "The store is SQLite."]
    xml = prompt.render(sources=items, family="anthropic", question="How do I pin a model?")
    assert '<source id="1" name="docs/pin.md" location="">\nSet `version:` on the alias.\n</source>' in xml.user
    assert '<source id="2" name="" location="">\nThe store is SQLite.\n</source>' in xml.user
    md = prompt.render(sources=items, question="q")
    assert md.user.startswith("### [1] docs/pin.md\nSet `version:` on the alias.\n\n### [2]\nThe store is SQLite.")
    same = prompt.render(sources=[SourceItem(1, "Set `version:` on the alias.", "docs/pin.md"),
                                  SourceItem(2, "The store is SQLite.")], question="q")
    assert same.user == md.user


def test_a_source_mapping_without_text_is_a_user_error():
    prompt = Prompt.from_content("qa", PROMPT)
    with pytest.raises(UserError, match="source 1 has no `text`"):
        prompt.render(sources=[{"source": "docs/a.md"}], question="q")
