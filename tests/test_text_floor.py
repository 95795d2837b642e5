"""The text floor: one language detector, one sentence splitter, one tokenizer (jieba loaded once)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flywheel.text import (
    STOPWORDS,
    detect,
    detect_language,
    segment,
    sentences_with_separators,
    split_sentences,
    stem,
    tokenize,
)


@pytest.mark.parametrize(
    "text, lang",
    [
        ("怎么设置 model version pinning？", "zh"),  # retrieval said en, the prompts said zh: now one answer
        ("如何配置 fallbacks？", "zh"),
        ("GPU 是什么", "zh"),
        ("Contact 王小明 for details.", "en"),  # an English sentence naming a Chinese person
        ("How do I pin it?", "en"),
        ("模型版本怎么固定", "zh"),
        ("モデルを固定するには？", "ja"),
        ("flywheel.yaml에서 모델 버전을 설정하세요.", "ko"),
        ("Укажите версию модели в файле конфигурации.", "ru"),
        ("Définissez la version dans le fichier de configuration pour que le modèle soit fixé.", "fr"),
        ("Paris.", "en"),  # Latin text too short to tell: English
        ("pin a model version", "en"),  # one Portuguese marker ("a") is not evidence enough
        ("la casa de papel es una serie", "es"),
        ("1234 !!!", ""),
    ],
)
def test_one_language_detector(text: str, lang: str) -> None:
    assert detect_language(text) == lang


def test_the_rooms_that_used_to_disagree_now_agree() -> None:
    from flywheel.checks.language import detect as check_detect
    from flywheel.prompts import language_of
    from flywheel.retrieval.tokenize import detect_language as retrieval_detect

    question = "怎么设置 model version pinning？"
    assert retrieval_detect(question) == language_of(question) == check_detect(question)[0][0] == "zh"


def test_short_latin_text_keeps_every_latin_candidate() -> None:
    found = detect("Paris.")
    assert found.candidates[0] == "en" and "fr" in found.candidates and found.confidence < 0.6


@pytest.mark.parametrize(
    "text, sentences",
    [
        ("First one. Second one! Third? Fourth", ["First one.", "Second one!", "Third?", "Fourth"]),
        ("中文第一句。中文第二句！第三句？第四句；好。", ["中文第一句。", "中文第二句！", "第三句？", "第四句；", "好。"]),
        ("他说：“你好。”然后走了！Done. Next one", ["他说：“你好。”", "然后走了！", "Done.", "Next one"]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("Use a model, e.g. Qwen, or i.e. Llama. Next.", ["Use a model, e.g. Qwen, or i.e. Llama.", "Next."]),
        ("Dr. Smith and J. R. Tolkien met. See Fig. 3 here.", ["Dr. Smith and J. R. Tolkien met.", "See Fig. 3 here."]),
        ("Pi is 3.14 today. It costs $3.50. Version v1.2 ships.", ["Pi is 3.14 today.", "It costs $3.50.",
                                                                  "Version v1.2 ships."]),
        ("Steps:\n1. Install it.\n2. Run it.\n- a list item", ["Steps:", "1. Install it.", "2. Run it.",
                                                                "- a list item"]),
        ("Wait... what happened? Nothing.", ["Wait... what happened?", "Nothing."]),
        ("真的吗?是的", ["真的吗?", "是的"]),
        ("", []),
    ],
)
def test_one_sentence_splitter(text: str, sentences: list[str]) -> None:
    assert split_sentences(text) == sentences


def test_separators_rebuild_the_text() -> None:
    text = "One. Two!\nThree？四。五"
    parts = sentences_with_separators(text)
    assert parts == [("One.", ""), ("Two!", " "), ("Three？", "\n"), ("四。", ""), ("五", "")]
    assert "".join(gap + s for s, gap in parts) == text


def test_tokens_and_stopwords() -> None:
    assert tokenize("范廷颂是什么时候被任为主教的？") == ["范廷颂", "时候", "任", "为主", "教"]
    assert tokenize("范廷颂是什么时候", keep_stopwords=True) == ["范廷颂", "是", "什么", "时候"]
    assert tokenize("How do I pin the GPT-4o model_version, ５Ｇ!") == ["pin", "gpt", "4o", "model", "version", "5g"]
    assert "the" in STOPWORDS and "的" in STOPWORDS and "version" not in STOPWORDS
    assert segment("模型版本怎么固定") == ["模型", "版本", "怎么", "固定"]
    assert [stem(w) for w in ("pinned", "versions", "caching", "libraries")] == ["pin", "version", "cach", "librari"]


def test_jieba_is_initialised_once_per_process() -> None:
    code = (
        "import importlib, threading\n"
        "t = importlib.import_module('flywheel.text.tokenize')\n"
        "from flywheel.retrieval.tokenize import keyword_tokens\n"
        "from flywheel.gateway.providers.extractive import terms\n"
        "ts = [threading.Thread(target=t.segment, args=('模型版本',)) for _ in range(4)]\n"
        "[x.start() for x in ts]; [x.join() for x in ts]\n"
        "keyword_tokens('模型版本怎么固定'); terms('模型版本怎么固定'); t.tokenize('中文')\n"
        "print(t.JIEBA_LOADS)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
