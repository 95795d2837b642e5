"""docs-QA retrieval augmentations: an unknown `options.query.model` / `options.rerank.model` alias is a config
error at its flywheel.yaml line when the project loads (it used to surface without a location at the first
question)."""

from __future__ import annotations

import pytest

from flywheel.config import Project
from flywheel.errors import UserError

CONFIG = """models:
  default: {provider: extractive}
  small: {provider: openai_compat, base_url: 'http://127.0.0.1:9/v1', model: fake}
apps:
  docs_qa:
    model: default
    options:
      query: {rewrite: true, model: QUERY}
      rerank:
        model: RERANK
"""


@pytest.mark.parametrize(("query", "rerank", "line", "bad"), [
    ("smal", "small", 8, "smal"),
    ("small", "smalll", 10, "smalll"),
])
def test_an_unknown_augment_alias_is_named_with_its_line(tmp_path, query, rerank, line, bad):
    (tmp_path / "flywheel.yaml").write_text(CONFIG.replace("QUERY", query).replace("RERANK", rerank))
    with pytest.raises(UserError) as info:
        Project.load(tmp_path)
    assert info.value.where == f"{tmp_path / 'flywheel.yaml'}:{line}"
    assert f"app 'docs_qa' uses unknown model alias '{bad}' — did you mean 'small'?" in info.value.message


def test_known_augment_aliases_load(tmp_path):
    (tmp_path / "flywheel.yaml").write_text(CONFIG.replace("QUERY", "small").replace("RERANK", "small"))
    assert Project.load(tmp_path).config.apps["docs_qa"].options["rerank"]["model"] == "small"
