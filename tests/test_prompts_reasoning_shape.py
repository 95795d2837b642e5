"""`reasoning:` of the wrong shape is one line naming the choices (it read "reasoning.bool: Input should be a
valid boolean … (+1 more)", pydantic's name for one branch of the union)."""

from __future__ import annotations

import pytest

from flywheel.errors import UserError
from flywheel.prompts.registry import load_prompt_file


def test_reasoning_of_the_wrong_shape_names_the_choices(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("name: p\ntemplate: 'Q: {{question}}'\nreasoning: maybe\n", encoding="utf-8")
    with pytest.raises(UserError) as info:
        load_prompt_file(path)
    assert info.value.where == f"{path}:3"
    assert "`reasoning`: must be true, false or {tag: NAME}, got 'maybe'" in info.value.message
    assert "bool" not in info.value.message  # not pydantic's union branch name
